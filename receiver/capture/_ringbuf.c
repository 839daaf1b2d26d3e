/* SPDX-License-Identifier: Apache-2.0
 *
 * receiver.capture._ringbuf: draining the BPF ring buffer without a Python call per record.
 *
 * The compiled half of receiver/capture/ringbuf.py.  Through cffi, libbpf called back into
 * Python for every record (~0.4 µs each, with its copy).  Here libbpf's callback is C: it
 * copies each record into one staging buffer, with the interpreter's lock released for the
 * whole poll (the wait and the copies), and the records become a list of bytes once, after.
 * The batch bound is the same: a poll stops at the record that reaches ``max_bytes`` (the
 * callback's negative return makes libbpf store the consumer position past it), and says so.
 *
 * A Reader is used by one thread at a time (the capture thread); close() from another thread
 * while a poll runs waits for that poll to end (the ring buffer is freed after it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <bpf/libbpf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	PyObject_HEAD
	struct ring_buffer *rb;
	uint8_t *buf; /* records, each as a u32 length and its bytes */
	size_t len, cap;
	size_t room;     /* bytes this poll may still take */
	Py_ssize_t count;
	int more;        /* the last poll stopped at its bound: records are waiting */
	int out_of_memory;
	int busy;        /* a poll runs (the lock released) */
	int closing;     /* close() came during that poll */
} reader;

static int on_record(void *ctx, void *data, size_t size)
{
	reader *r = ctx;
	uint32_t n = (uint32_t)size;
	size_t need = sizeof(n) + size;

	if (r->len + need > r->cap) {
		size_t cap = r->cap ? r->cap : 1 << 16;
		uint8_t *buf;

		while (cap < r->len + need)
			cap *= 2;
		buf = realloc(r->buf, cap);
		if (!buf) {
			r->out_of_memory = 1;
			return -1;
		}
		r->buf = buf;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, &n, sizeof(n));
	memcpy(r->buf + r->len + sizeof(n), data, size);
	r->len += need;
	r->count++;
	if (size >= r->room) {
		r->room = 0;
		return -1; /* libbpf stores the consumer position past this record and stops */
	}
	r->room -= size;
	return 0;
}

static void release(reader *r)
{
	if (r->rb) {
		ring_buffer__free(r->rb);
		r->rb = NULL;
	}
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}

static int init(PyObject *self, PyObject *args, PyObject *kwargs)
{
	static char *keywords[] = { "map_fd", NULL };
	reader *r = (reader *)self;
	int fd;

	if (r->rb) {
		PyErr_SetString(PyExc_RuntimeError, "a Reader is initialised once");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i", keywords, &fd))
		return -1;
	r->rb = ring_buffer__new(fd, on_record, r, NULL);
	if (!r->rb) {
		PyErr_Format(PyExc_OSError, "ring_buffer__new failed for map fd %d", fd);
		return -1;
	}
	return 0;
}

/* poll(timeout_ms, max_bytes) -> (records, more) */
static PyObject *poll_records(PyObject *self, PyObject *args)
{
	reader *r = (reader *)self;
	int timeout_ms;
	Py_ssize_t max_bytes, off = 0;
	PyObject *out, *item;

	if (!PyArg_ParseTuple(args, "in", &timeout_ms, &max_bytes))
		return NULL;
	if (max_bytes < 1) {
		PyErr_SetString(PyExc_ValueError, "max_bytes must be at least 1");
		return NULL;
	}
	if (r->busy) {
		PyErr_SetString(PyExc_RuntimeError, "a Reader polls in one thread at a time");
		return NULL;
	}
	if (!r->rb)
		return Py_BuildValue("[]O", Py_False);
	r->len = 0;
	r->count = 0;
	r->room = (size_t)max_bytes;
	r->out_of_memory = 0;
	r->busy = 1;
	Py_BEGIN_ALLOW_THREADS
	/* poll only consumes when epoll fired; records submitted without a wakeup are taken here */
	if (timeout_ms && !r->more)
		ring_buffer__poll(r->rb, timeout_ms);
	if (r->room > 0 && !r->out_of_memory)
		ring_buffer__consume(r->rb);
	Py_END_ALLOW_THREADS
	r->busy = 0;
	r->more = r->room == 0;
	out = r->out_of_memory ? PyErr_NoMemory() : PyList_New(r->count);
	for (Py_ssize_t i = 0; out && i < r->count; i++) {
		uint32_t n;

		memcpy(&n, r->buf + off, sizeof(n));
		item = PyBytes_FromStringAndSize((const char *)r->buf + off + sizeof(n), n);
		if (!item)
			Py_CLEAR(out);
		else
			PyList_SET_ITEM(out, i, item);
		off += sizeof(n) + n;
	}
	/* The records are out of the staging buffer: now a close that came meanwhile may free it. */
	if (r->closing)
		release(r);
	else if (r->cap > (1 << 22) && r->len < (1 << 20)) { /* give back what an oversize batch grew */
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	return out ? Py_BuildValue("NO", out, r->more ? Py_True : Py_False) : NULL;
}

static PyObject *close_reader(PyObject *self, PyObject *unused)
{
	reader *r = (reader *)self;

	if (r->busy)
		r->closing = 1; /* the poll running in another thread frees it when it returns */
	else
		release(r);
	Py_RETURN_NONE;
}

static void dealloc(PyObject *self)
{
	PyTypeObject *type = Py_TYPE(self);

	release((reader *)self);
	type->tp_free(self);
	Py_DECREF(type);
}

static PyMethodDef methods[] = {
	{ "poll", poll_records, METH_VARARGS,
	  "poll(timeout_ms, max_bytes) -> (records, more): wait up to timeout_ms (not when more was waiting), "
	  "then take what is pending, at most max_bytes of records (at least one); more: the bound stopped it." },
	{ "close", close_reader, METH_NOARGS, "Free the ring buffer (after the poll running, if any). Idempotent." },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot reader_slots[] = {
	{ Py_tp_doc, "Reader(map_fd): the ring buffer of a BPF_MAP_TYPE_RINGBUF map." },
	{ Py_tp_init, init },
	{ Py_tp_methods, methods },
	{ Py_tp_dealloc, dealloc },
	{ 0, NULL },
};

static PyType_Spec reader_spec = {
	"receiver.capture._ringbuf.Reader", sizeof(reader), 0, Py_TPFLAGS_DEFAULT, reader_slots,
};

static int exec_module(PyObject *module)
{
	PyObject *type = PyType_FromModuleAndSpec(module, &reader_spec, NULL);
	int err;

	if (!type)
		return -1;
	err = PyModule_AddObjectRef(module, "Reader", type);
	Py_DECREF(type);
	return err;
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, exec_module },
	{ 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, "_ringbuf", "Draining a BPF ring buffer (see _ringbuf.c).", 0,
	NULL, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ringbuf(void)
{
	return PyModuleDef_Init(&module_def);
}
