"""Known hot Python functions for the profiler's acceptance test: hot_py_seventy and
hot_py_thirty each run for their share of every 100 ms of this thread's CPU time (70/30 by
construction), for argv[2] seconds of CPU after argv[1] seconds of sleep; then it sleeps until
killed."""

import sys
import time


def hot_py_seventy(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(5000):
            x = (x * 31 + i) & 0xFFFFFFFF
    return x


def hot_py_thirty(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(5000):
            x = (x * 31 + i) & 0xFFFFFFFF
    return x


def main():
    time.sleep(float(sys.argv[1]))
    spent = 0.0
    while spent < float(sys.argv[2]):
        hot_py_seventy(0.07)
        hot_py_thirty(0.03)
        spent += 0.1
    print("done", flush=True)
    while True:
        time.sleep(3600)


main()
