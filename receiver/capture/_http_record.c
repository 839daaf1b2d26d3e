/* SPDX-License-Identifier: Apache-2.0
 *
 * receiver.capture._http_record: ERX_EV_HTTP_TX records into HttpTxEvent, in C.
 *
 * The compiled half of EventDecoder._decode_http (receiver/capture/events.py), the capture
 * thread's first step for nearly every record: one call per record instead of some twenty
 * Python-level ones.  It knows no layout of its own: configure() hands it, once, where each
 * field lies, as EventDecoder derives it from bpf/src/abi/events.h (the header checked against
 * BTF), and the classes to build.  decode(rec) returns exactly what the Python decoder returns
 * (tests/unit/capture/test_http_record.py), or None for a record too short for its fields or
 * its strings — the caller counts it as malformed.
 *
 * Endpoints are shared: the Tuple of a record's endpoint bytes comes from the decoder's dict
 * (made here on a miss), its address texts from the decoder's address cache (written on a miss
 * by the Python function the decoder passes); both bounded as in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define N_SCALARS 27 /* HttpTxEvent's int fields, kind .. n_interim */
#define N_STRS 11    /* method_len, target_len, host_off/len, user_agent_off/len, traceparent_off/len,
			tracestate_off/len, n_interim */
#define MAX_INTERIM 8
#define MAX_TUPLES 65536 /* as EventDecoder: the dict is emptied past it */
#define MAX_ADDRS 4096 /* as EventDecoder */
#define ADDR_BYTES 16

typedef struct {
	Py_ssize_t off;
	int size;
	int is_signed;
} field;

enum { E_SADDR, E_DADDR, E_SPORT, E_DPORT, E_FAMILY, E_TRANSPORT, E_COUNT };

typedef struct {
	PyObject_HEAD
	PyTypeObject *event_type, *tuple_type;
	PyObject *tuples; /* dict: endpoint bytes -> Tuple (the decoder's own) */
	PyObject *addrs;  /* dict: family (2 bytes, little-endian) + address bytes -> text (the decoder's own) */
	PyObject *addr_text; /* callable (family, raw) -> str */
	field scalars[N_SCALARS], strs[N_STRS], interim, strings_len, endpoint[E_COUNT];
	int n_interim_max;
	Py_ssize_t fixed_size, strings_off, key_start, key_end;
} decoder;

static uint64_t read_unsigned(const uint8_t *p, const field *f)
{
	uint64_t v = 0;

	for (int i = f->size - 1; i >= 0; i--)
		v = v << 8 | p[f->off + i];
	return v;
}

static PyObject *read_int(const uint8_t *p, const field *f)
{
	uint64_t v = read_unsigned(p, f);

	if (f->is_signed && f->size < 8 && (v >> (8 * f->size - 1)) & 1)
		v |= ~(uint64_t)0 << (8 * f->size); /* sign-extend */
	if (f->is_signed)
		return PyLong_FromLongLong((long long)v);
	return PyLong_FromUnsignedLongLong(v);
}

/* s[start:start + len] with Python's slice clamping (offsets are unsigned). */
static PyObject *latin1_slice(const uint8_t *s, uint64_t n, uint64_t start, uint64_t len)
{
	uint64_t stop = start + len;

	if (start > n)
		start = n;
	if (stop > n)
		stop = n;
	if (stop <= start)
		return PyUnicode_New(0, 0);
	return PyUnicode_DecodeLatin1((const char *)s + start, (Py_ssize_t)(stop - start), NULL);
}

/* The address text of (family, raw), cached. New reference. */
static PyObject *address(decoder *st, unsigned long family, const uint8_t *raw)
{
	uint8_t keybuf[2 + ADDR_BYTES];
	PyObject *key, *text, *py_family, *py_raw;

	keybuf[0] = (uint8_t)family;
	keybuf[1] = (uint8_t)(family >> 8);
	memcpy(keybuf + 2, raw, ADDR_BYTES);
	key = PyBytes_FromStringAndSize((const char *)keybuf, sizeof(keybuf));
	if (!key)
		return NULL;
	text = PyDict_GetItemWithError(st->addrs, key);
	if (text) {
		Py_DECREF(key);
		return Py_NewRef(text);
	}
	if (PyErr_Occurred())
		goto fail;
	py_family = PyLong_FromUnsignedLong(family);
	py_raw = PyBytes_FromStringAndSize((const char *)raw, ADDR_BYTES);
	text = py_family && py_raw ? PyObject_CallFunctionObjArgs(st->addr_text, py_family, py_raw, NULL) : NULL;
	Py_XDECREF(py_family);
	Py_XDECREF(py_raw);
	if (!text)
		goto fail;
	if (PyDict_GET_SIZE(st->addrs) >= MAX_ADDRS)
		PyDict_Clear(st->addrs);
	if (PyDict_SetItem(st->addrs, key, text)) {
		Py_DECREF(text);
		goto fail;
	}
	Py_DECREF(key);
	return text;
fail:
	Py_DECREF(key);
	return NULL;
}

/* The record's Tuple, from the decoder's dict or made and added. New reference. */
static PyObject *endpoints(decoder *st, const uint8_t *rec)
{
	PyObject *key, *t, *local = NULL, *remote = NULL;
	unsigned long family;

	key = PyBytes_FromStringAndSize((const char *)rec + st->key_start, st->key_end - st->key_start);
	if (!key)
		return NULL;
	t = PyDict_GetItemWithError(st->tuples, key);
	if (t) {
		Py_DECREF(key);
		return Py_NewRef(t);
	}
	if (PyErr_Occurred())
		goto fail;
	family = (unsigned long)read_unsigned(rec, &st->endpoint[E_FAMILY]);
	local = address(st, family, rec + st->endpoint[E_SADDR].off);
	remote = local ? address(st, family, rec + st->endpoint[E_DADDR].off) : NULL;
	if (!remote)
		goto fail;
	t = st->tuple_type->tp_alloc(st->tuple_type, 6);
	if (!t)
		goto fail;
	PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLong(family));
	PyTuple_SET_ITEM(t, 1, read_int(rec, &st->endpoint[E_TRANSPORT]));
	PyTuple_SET_ITEM(t, 2, local);
	PyTuple_SET_ITEM(t, 3, read_int(rec, &st->endpoint[E_SPORT]));
	PyTuple_SET_ITEM(t, 4, remote);
	PyTuple_SET_ITEM(t, 5, read_int(rec, &st->endpoint[E_DPORT]));
	local = remote = NULL; /* the tuple holds them */
	for (int i = 0; i < 6; i++) {
		if (!PyTuple_GET_ITEM(t, i)) {
			Py_DECREF(t);
			goto fail;
		}
	}
	if (PyDict_GET_SIZE(st->tuples) > MAX_TUPLES)
		PyDict_Clear(st->tuples);
	if (PyDict_SetItem(st->tuples, key, t)) {
		Py_DECREF(t);
		goto fail;
	}
	Py_DECREF(key);
	return t;
fail:
	Py_XDECREF(local);
	Py_XDECREF(remote);
	Py_DECREF(key);
	return NULL;
}

static PyObject *decode(PyObject *self, PyObject *arg)
{
	decoder *st = (decoder *)self;
	const uint8_t *rec, *s;
	uint64_t v[N_STRS], n_strings, n_interim;
	Py_ssize_t len;
	PyObject *ev, *item;
	int i, k = 0;

	if (!st->event_type) {
		PyErr_SetString(PyExc_RuntimeError, "decoder not initialised");
		return NULL;
	}
	if (!PyBytes_CheckExact(arg)) {
		PyErr_SetString(PyExc_TypeError, "a record is bytes");
		return NULL;
	}
	rec = (const uint8_t *)PyBytes_AS_STRING(arg);
	len = PyBytes_GET_SIZE(arg);
	if (len < st->fixed_size)
		Py_RETURN_NONE;
	n_strings = read_unsigned(rec, &st->strings_len);
	if ((uint64_t)len < (uint64_t)st->strings_off + n_strings)
		Py_RETURN_NONE;
	s = rec + st->strings_off;
	for (i = 0; i < N_STRS; i++)
		v[i] = read_unsigned(rec, &st->strs[i]);
	ev = st->event_type->tp_alloc(st->event_type, N_SCALARS + 8);
	if (!ev)
		return NULL;
	for (i = 0; i < N_SCALARS; i++) {
		item = read_int(rec, &st->scalars[i]);
		if (!item)
			goto fail;
		PyTuple_SET_ITEM(ev, k++, item);
	}
	item = endpoints(st, rec);
	if (!item)
		goto fail;
	PyTuple_SET_ITEM(ev, k++, item);
	n_interim = v[10];
	if (n_interim > (uint64_t)st->n_interim_max)
		n_interim = st->n_interim_max;
	item = PyTuple_New((Py_ssize_t)n_interim);
	if (!item)
		goto fail;
	for (uint64_t j = 0; j < n_interim; j++) {
		field f = st->interim;
		PyObject *code;

		f.off += (Py_ssize_t)j * f.size;
		code = read_int(rec, &f);
		if (!code) {
			Py_DECREF(item);
			goto fail;
		}
		PyTuple_SET_ITEM(item, (Py_ssize_t)j, code);
	}
	PyTuple_SET_ITEM(ev, k++, item);
	/* method s[:method_len], target s[method_len:method_len + target_len], then (off, len) pairs */
	item = latin1_slice(s, n_strings, 0, v[0]);
	if (!item)
		goto fail;
	PyTuple_SET_ITEM(ev, k++, item);
	item = latin1_slice(s, n_strings, v[0], v[1]);
	if (!item)
		goto fail;
	PyTuple_SET_ITEM(ev, k++, item);
	for (i = 2; i < 10; i += 2) {
		item = latin1_slice(s, n_strings, v[i], v[i + 1]);
		if (!item)
			goto fail;
		PyTuple_SET_ITEM(ev, k++, item);
	}
	return ev;
fail:
	Py_DECREF(ev); /* the items not set yet are NULL: tuple dealloc skips them */
	return NULL;
}

/* -- the decoder object -------------------------------------------------------------------- */

static int parse_field(PyObject *spec, field *f)
{
	Py_ssize_t off;
	int size, is_signed;

	if (!PyArg_ParseTuple(spec, "nip", &off, &size, &is_signed))
		return -1;
	if (off < 0 || !(size == 1 || size == 2 || size == 4 || size == 8)) {
		PyErr_SetString(PyExc_ValueError, "a field is (offset >= 0, size 1/2/4/8, signed)");
		return -1;
	}
	f->off = off;
	f->size = size;
	f->is_signed = is_signed;
	return 0;
}

static int parse_fields(PyObject *specs, field *out, Py_ssize_t n, const char *what)
{
	if (!PyTuple_Check(specs) || PyTuple_GET_SIZE(specs) != n) {
		PyErr_Format(PyExc_ValueError, "%s: %zd fields expected", what, n);
		return -1;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		if (parse_field(PyTuple_GET_ITEM(specs, i), &out[i]))
			return -1;
	}
	return 0;
}

static int within(const field *f, Py_ssize_t size)
{
	return f->off + f->size <= size;
}

static int init(PyObject *self, PyObject *args, PyObject *kwargs)
{
	static char *keywords[] = { "event_type", "tuple_type", "scalars", "strs", "interim", "n_interim_max",
				    "strings_len", "strings_off", "addresses", "endpoint", "key", "fixed_size",
				    "tuples", "addrs", "addr_text", NULL };
	decoder *st = (decoder *)self;
	PyObject *event_type, *tuple_type, *scalars, *strs, *interim, *strings_len, *endpoint, *tuples, *addrs;
	PyObject *addr_text;
	Py_ssize_t strings_off, key_start, key_end, fixed_size, saddr, daddr;
	int n_interim_max, ok = 1;

	if (st->event_type) {
		PyErr_SetString(PyExc_RuntimeError, "a decoder is configured once");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!OOOiOn(nn)O(nn)nO!O!O", keywords, &PyType_Type,
					 &event_type, &PyType_Type, &tuple_type, &scalars, &strs, &interim,
					 &n_interim_max, &strings_len, &strings_off, &saddr, &daddr, &endpoint,
					 &key_start, &key_end, &fixed_size, &PyDict_Type, &tuples, &PyDict_Type, &addrs,
					 &addr_text))
		return -1;
	if (!PyType_IsSubtype((PyTypeObject *)event_type, &PyTuple_Type) ||
	    !PyType_IsSubtype((PyTypeObject *)tuple_type, &PyTuple_Type) || !PyCallable_Check(addr_text)) {
		PyErr_SetString(PyExc_TypeError, "event_type and tuple_type are tuple subclasses, addr_text a callable");
		return -1;
	}
	if (parse_fields(scalars, st->scalars, N_SCALARS, "scalars") || parse_fields(strs, st->strs, N_STRS, "strs") ||
	    parse_field(interim, &st->interim) || parse_field(strings_len, &st->strings_len) ||
	    parse_fields(endpoint, st->endpoint + E_SPORT, E_COUNT - E_SPORT, "endpoint"))
		return -1;
	st->endpoint[E_SADDR] = (field){ saddr, 1, 0 };
	st->endpoint[E_DADDR] = (field){ daddr, 1, 0 };
	for (int i = 0; i < N_SCALARS; i++)
		ok &= within(&st->scalars[i], fixed_size);
	for (int i = 0; i < N_STRS; i++)
		ok &= within(&st->strs[i], fixed_size) && !st->strs[i].is_signed;
	for (int i = E_SPORT; i < E_COUNT; i++)
		ok &= within(&st->endpoint[i], fixed_size);
	ok &= saddr >= 0 && daddr >= 0 && saddr + ADDR_BYTES <= fixed_size && daddr + ADDR_BYTES <= fixed_size;
	ok &= n_interim_max >= 0 && n_interim_max <= MAX_INTERIM &&
	      st->interim.off + (Py_ssize_t)n_interim_max * st->interim.size <= fixed_size;
	ok &= within(&st->strings_len, fixed_size) && strings_off >= 0;
	ok &= key_start >= 0 && key_start < key_end && key_end <= fixed_size;
	if (!ok) {
		PyErr_SetString(PyExc_ValueError, "a field lies outside the record's fixed part");
		return -1;
	}
	st->n_interim_max = n_interim_max;
	st->strings_off = strings_off;
	st->key_start = key_start;
	st->key_end = key_end;
	st->fixed_size = fixed_size;
	st->event_type = (PyTypeObject *)Py_NewRef(event_type);
	st->tuple_type = (PyTypeObject *)Py_NewRef(tuple_type);
	st->tuples = Py_NewRef(tuples);
	st->addrs = Py_NewRef(addrs);
	st->addr_text = Py_NewRef(addr_text);
	return 0;
}

static int traverse(PyObject *self, visitproc visit, void *arg)
{
	decoder *st = (decoder *)self;

	Py_VISIT(Py_TYPE(self));
	Py_VISIT(st->event_type);
	Py_VISIT(st->tuple_type);
	Py_VISIT(st->tuples);
	Py_VISIT(st->addrs);
	Py_VISIT(st->addr_text);
	return 0;
}

static int clear(PyObject *self)
{
	decoder *st = (decoder *)self;

	Py_CLEAR(st->event_type);
	Py_CLEAR(st->tuple_type);
	Py_CLEAR(st->tuples);
	Py_CLEAR(st->addrs);
	Py_CLEAR(st->addr_text);
	return 0;
}

static void dealloc(PyObject *self)
{
	PyTypeObject *type = Py_TYPE(self);

	PyObject_GC_UnTrack(self);
	clear(self);
	type->tp_free(self);
	Py_DECREF(type);
}

static PyMethodDef decoder_methods[] = {
	{ "decode", decode, METH_O, "decode(record: bytes) -> HttpTxEvent, or None when the record is malformed." },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot decoder_slots[] = {
	{ Py_tp_doc, "Decoder(**layout): decode(record) -> HttpTxEvent, or None when the record is malformed." },
	{ Py_tp_init, init },
	{ Py_tp_methods, decoder_methods },
	{ Py_tp_traverse, traverse },
	{ Py_tp_clear, clear },
	{ Py_tp_dealloc, dealloc },
	{ 0, NULL },
};

static PyType_Spec decoder_spec = {
	"receiver.capture._http_record.Decoder", sizeof(decoder), 0,
	Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, decoder_slots,
};

static int exec_module(PyObject *module)
{
	PyObject *type = PyType_FromModuleAndSpec(module, &decoder_spec, NULL);

	if (!type)
		return -1;
	if (PyModule_AddObjectRef(module, "Decoder", type)) {
		Py_DECREF(type);
		return -1;
	}
	Py_DECREF(type);
	return 0;
}

static PyModuleDef_Slot module_slots[] = {
	{ Py_mod_exec, exec_module },
	{ 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, "_http_record", "ERX_EV_HTTP_TX records into HttpTxEvent (see _http_record.c).", 0,
	NULL, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__http_record(void)
{
	return PyModuleDef_Init(&module_def);
}
