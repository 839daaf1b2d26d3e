/* Known hot functions for the profiler's acceptance test: hot_seventy and hot_thirty each spin
 * for their share of every 100 ms of this thread's CPU time (70/30 by construction), for
 * argv[2] seconds of CPU, after argv[1] seconds of sleep; then it sleeps until killed (its
 * mappings stay readable for symbolisation). Built with -fno-omit-frame-pointer by the test. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

volatile unsigned long sink;

static double cpu_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void hot_seventy(double seconds)
{
	double end = cpu_seconds() + seconds;
	unsigned long x = sink;

	while (cpu_seconds() < end)
		for (int i = 0; i < 200000; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

__attribute__((noinline)) void hot_thirty(double seconds)
{
	double end = cpu_seconds() + seconds;
	unsigned long x = sink;

	while (cpu_seconds() < end)
		for (int i = 0; i < 200000; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

int main(int argc, char **argv)
{
	double work;

	if (argc < 3)
		return 2;
	usleep((useconds_t)(atof(argv[1]) * 1e6));
	work = atof(argv[2]);
	for (double spent = 0; spent < work; spent += 0.1) {
		hot_seventy(0.07);
		hot_thirty(0.03);
	}
	for (;;)
		pause();
}
