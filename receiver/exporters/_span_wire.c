/* SPDX-License-Identifier: Apache-2.0
 *
 * receiver.exporters._span_wire: serialized OTLP ``Span`` messages, written in C.
 *
 * The compiled half of receiver/exporters/otlp_wire.py's span path (see its docstring): one call
 * per batch, ``encode(spans)``, returns for each span the bytes of its ``Span`` message (without
 * the enclosing tag and length), or None when the span holds anything off the agent's usual
 * shapes — then otlp_wire.py encodes that span in Python, which stays the reference for what
 * is accepted, rejected or repaired.  The output is byte for byte what otlp_wire.py writes
 * (tests/unit/exporters/test_span_wire.py checks it on real and generated spans).
 *
 * Usual shapes: a Span whose slots hold exact types — bytes ids, str texts, a SpanKind and a
 * StatusCode, ints (times and flags in range), and an attribute dict of str keys whose values
 * are str, bool, int (int64), float or bytes.  Texts go out as UTF-8; one UTF-8 cannot encode
 * (a lone surrogate) makes the span None, so Python raises and repairs as before.
 *
 * ``configure(span_type, kind_type, status_type, tags)`` is called once, by otlp_wire.py: the
 * classes whose instances are usual, and the field tags, derived there from the protobuf
 * descriptors (no field number is written here by hand).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* The Span slots read, in this order (names of receiver.model.telemetry.Span's fields). */
enum {
	F_TRACE_ID, F_SPAN_ID, F_NAME, F_KIND, F_START, F_END, F_PARENT, F_TRACE_STATE, F_ATTRIBUTES,
	F_STATUS_CODE, F_STATUS_MESSAGE, F_FLAGS, F_COUNT
};
static const char *const field_names[F_COUNT] = {
	"trace_id", "span_id", "name", "kind", "start_unix_nano", "end_unix_nano", "parent_span_id",
	"trace_state", "attributes", "status_code", "status_message", "flags",
};

/* Field tags, in the order configure() receives them. */
enum {
	T_TRACE_ID, T_SPAN_ID, T_TRACE_STATE, T_PARENT, T_NAME, T_KIND, T_START, T_END, T_ATTRIBUTES,
	T_STATUS, T_FLAGS, T_STATUS_MESSAGE, T_STATUS_CODE, T_KV_KEY, T_KV_VALUE, T_AV_STRING,
	T_AV_BOOL, T_AV_INT, T_AV_DOUBLE, T_AV_BYTES, T_COUNT
};

typedef struct {
	PyTypeObject *span_type, *kind_type, *status_type;
	Py_ssize_t offsets[F_COUNT];
	uint8_t tags[T_COUNT][2]; /* each tag's varint: one byte, or two (fields 16 and up) */
	uint8_t tag_len[T_COUNT];
	int configured;
} module_state;

static module_state *state_of(PyObject *module)
{
	return (module_state *)PyModule_GetState(module);
}

/* -- a growable output buffer ------------------------------------------------------------------ */

typedef struct {
	uint8_t *data;
	size_t len, cap;
} buffer;

static int reserve(buffer *b, size_t more)
{
	size_t cap;
	uint8_t *data;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more)
		cap *= 2;
	data = PyMem_Realloc(b->data, cap);
	if (!data) {
		PyErr_NoMemory();
		return -1;
	}
	b->data = data;
	b->cap = cap;
	return 0;
}

static size_t varint_size(uint64_t n)
{
	size_t s = 1;

	while (n >= 0x80) {
		n >>= 7;
		s++;
	}
	return s;
}

/* Callers reserve first: these write into room already there. */
static void put_varint(buffer *b, uint64_t n)
{
	while (n >= 0x80) {
		b->data[b->len++] = (uint8_t)(n | 0x80);
		n >>= 7;
	}
	b->data[b->len++] = (uint8_t)n;
}

static void put_bytes(buffer *b, const void *p, size_t n)
{
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_le(buffer *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static void put_tag(buffer *b, const module_state *st, int t)
{
	b->data[b->len++] = st->tags[t][0];
	if (st->tag_len[t] == 2)
		b->data[b->len++] = st->tags[t][1];
}

/* tag, length, payload — the room is reserved here. */
static int put_delimited(buffer *b, const module_state *st, int tag, const void *p, size_t n)
{
	if (reserve(b, 2 + 10 + n))
		return -1;
	put_tag(b, st, tag);
	put_varint(b, n);
	put_bytes(b, p, n);
	return 0;
}

/* -- attributes ------------------------------------------------------------------------------- */

/* An AnyValue of one of the usual types. */
typedef struct {
	int kind; /* T_AV_* */
	const char *data;
	Py_ssize_t len;
	uint64_t number;
} any_value;

/* 1: usual (v filled), 0: not usual, -1: error other than a UTF-8 failure (raised). */
static int usual_value(PyObject *value, any_value *v)
{
	PyTypeObject *t = Py_TYPE(value);

	if (t == &PyUnicode_Type) {
		v->kind = T_AV_STRING;
		v->data = PyUnicode_AsUTF8AndSize(value, &v->len);
		if (!v->data) {
			if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
				return -1;
			PyErr_Clear();
			return 0;
		}
		return 1;
	}
	if (t == &PyBool_Type) {
		v->kind = T_AV_BOOL;
		v->number = value == Py_True;
		return 1;
	}
	if (t == &PyLong_Type) {
		int overflow;
		long long n = PyLong_AsLongLongAndOverflow(value, &overflow);

		if (overflow)
			return 0; /* Python writes its decimal string, as the reference */
		if (n == -1 && PyErr_Occurred())
			return -1;
		v->kind = T_AV_INT;
		v->number = (uint64_t)n;
		return 1;
	}
	if (t == &PyFloat_Type) {
		double d = PyFloat_AS_DOUBLE(value);

		v->kind = T_AV_DOUBLE;
		memcpy(&v->number, &d, sizeof(d));
		return 1;
	}
	if (t == &PyBytes_Type) {
		v->kind = T_AV_BYTES;
		v->data = PyBytes_AS_STRING(value);
		v->len = PyBytes_GET_SIZE(value);
		return 1;
	}
	return 0;
}

static size_t any_value_size(const module_state *st, const any_value *v)
{
	size_t tag = st->tag_len[v->kind];

	switch (v->kind) {
	case T_AV_STRING:
	case T_AV_BYTES:
		return tag + varint_size(v->len) + v->len;
	case T_AV_DOUBLE:
		return tag + 8;
	default: /* bool, int */
		return tag + varint_size(v->number);
	}
}

static void put_any_value(buffer *b, const module_state *st, const any_value *v)
{
	put_tag(b, st, v->kind);
	switch (v->kind) {
	case T_AV_STRING:
	case T_AV_BYTES:
		put_varint(b, v->len);
		put_bytes(b, v->data, v->len);
		break;
	case T_AV_DOUBLE:
		put_le(b, v->number, 8);
		break;
	default:
		put_varint(b, v->number);
	}
}

/* Each attribute as a repeated ``attributes`` KeyValue field. 1 done, 0 not usual, -1 error. */
static int put_attributes(buffer *b, const module_state *st, PyObject *attributes)
{
	Py_ssize_t pos = 0, klen;
	PyObject *key, *value;
	const char *k;
	any_value v;
	size_t vsize, kvsize;
	int r;

	if (Py_TYPE(attributes) != &PyDict_Type)
		return 0;
	while (PyDict_Next(attributes, &pos, &key, &value)) {
		if (Py_TYPE(key) != &PyUnicode_Type)
			return 0;
		k = PyUnicode_AsUTF8AndSize(key, &klen);
		if (!k) {
			if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
				return -1;
			PyErr_Clear();
			return 0;
		}
		r = usual_value(value, &v);
		if (r <= 0)
			return r;
		vsize = any_value_size(st, &v);
		kvsize = (klen ? st->tag_len[T_KV_KEY] + varint_size(klen) + klen : 0) + st->tag_len[T_KV_VALUE] +
			 varint_size(vsize) + vsize;
		if (reserve(b, 2 + 10 + kvsize))
			return -1;
		put_tag(b, st, T_ATTRIBUTES);
		put_varint(b, kvsize);
		if (klen) {
			put_tag(b, st, T_KV_KEY);
			put_varint(b, klen);
			put_bytes(b, k, klen);
		}
		put_tag(b, st, T_KV_VALUE);
		put_varint(b, vsize);
		put_any_value(b, st, &v);
	}
	return 1;
}

/* -- one span --------------------------------------------------------------------------------- */

static PyObject *slot(PyObject *span, const module_state *st, int field)
{
	return *(PyObject **)((char *)span + st->offsets[field]);
}

/* An int (exactly, or the enum class already checked) in [0, limit]: 1 and *out set, 0 not usual,
 * -1 error. */
static int unsigned_in(PyObject *o, uint64_t limit, uint64_t *out)
{
	unsigned long long n;

	if (!PyLong_Check(o))
		return 0;
	n = PyLong_AsUnsignedLongLong(o); /* OverflowError for a negative one too */
	if (n == (unsigned long long)-1 && PyErr_Occurred()) {
		if (!PyErr_ExceptionMatches(PyExc_OverflowError))
			return -1;
		PyErr_Clear();
		return 0;
	}
	if (n > limit)
		return 0;
	*out = n;
	return 1;
}

/* A str's UTF-8: 1 (data, len set), 0 not usual (incl. a lone surrogate), -1 error. */
static int utf8_of(PyObject *o, const char **data, Py_ssize_t *len)
{
	if (Py_TYPE(o) != &PyUnicode_Type)
		return 0;
	*data = PyUnicode_AsUTF8AndSize(o, len);
	if (*data)
		return 1;
	if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
		return -1;
	PyErr_Clear();
	return 0;
}

/* Appends the span's message to b: 1 done, 0 not usual (b->len restored by the caller), -1 error. */
static int put_span(buffer *b, const module_state *st, PyObject *span)
{
	PyObject *f[F_COUNT];
	const char *name, *state, *message;
	Py_ssize_t name_len, state_len, message_len;
	uint64_t kind, code, start, end, flags;
	int r;

	if (Py_TYPE(span) != st->span_type)
		return 0;
	for (int i = 0; i < F_COUNT; i++) {
		f[i] = slot(span, st, i);
		if (!f[i])
			return 0; /* an unset slot: Python raises AttributeError, as the reference */
	}
	if (Py_TYPE(f[F_TRACE_ID]) != &PyBytes_Type || Py_TYPE(f[F_SPAN_ID]) != &PyBytes_Type ||
	    Py_TYPE(f[F_PARENT]) != &PyBytes_Type || Py_TYPE(f[F_KIND]) != st->kind_type ||
	    Py_TYPE(f[F_STATUS_CODE]) != st->status_type)
		return 0;
	if ((r = utf8_of(f[F_NAME], &name, &name_len)) <= 0 ||
	    (r = utf8_of(f[F_TRACE_STATE], &state, &state_len)) <= 0 ||
	    (r = utf8_of(f[F_STATUS_MESSAGE], &message, &message_len)) <= 0)
		return r;
	/* kind and status code: enum members, ints below 128 (one varint byte) */
	if (Py_TYPE(f[F_START]) != &PyLong_Type || Py_TYPE(f[F_END]) != &PyLong_Type ||
	    Py_TYPE(f[F_FLAGS]) != &PyLong_Type)
		return 0; /* a bool or another int subclass: Python decides */
	if ((r = unsigned_in(f[F_KIND], 0x7f, &kind)) <= 0 || (r = unsigned_in(f[F_STATUS_CODE], 0x7f, &code)) <= 0 ||
	    (r = unsigned_in(f[F_START], UINT64_MAX, &start)) <= 0 ||
	    (r = unsigned_in(f[F_END], UINT64_MAX, &end)) <= 0 ||
	    (r = unsigned_in(f[F_FLAGS], UINT32_MAX, &flags)) <= 0)
		return r;

	if (PyBytes_GET_SIZE(f[F_TRACE_ID]) &&
	    put_delimited(b, st, T_TRACE_ID, PyBytes_AS_STRING(f[F_TRACE_ID]), PyBytes_GET_SIZE(f[F_TRACE_ID])))
		return -1;
	if (PyBytes_GET_SIZE(f[F_SPAN_ID]) &&
	    put_delimited(b, st, T_SPAN_ID, PyBytes_AS_STRING(f[F_SPAN_ID]), PyBytes_GET_SIZE(f[F_SPAN_ID])))
		return -1;
	if (state_len && put_delimited(b, st, T_TRACE_STATE, state, state_len))
		return -1;
	if (PyBytes_GET_SIZE(f[F_PARENT]) &&
	    put_delimited(b, st, T_PARENT, PyBytes_AS_STRING(f[F_PARENT]), PyBytes_GET_SIZE(f[F_PARENT])))
		return -1;
	if (name_len && put_delimited(b, st, T_NAME, name, name_len))
		return -1;
	if (reserve(b, 3 * (2 + 8)))
		return -1;
	if (kind) {
		put_tag(b, st, T_KIND);
		b->data[b->len++] = (uint8_t)kind;
	}
	if (start) {
		put_tag(b, st, T_START);
		put_le(b, start, 8);
	}
	if (end) {
		put_tag(b, st, T_END);
		put_le(b, end, 8);
	}
	r = put_attributes(b, st, f[F_ATTRIBUTES]);
	if (r <= 0)
		return r;
	if (code || message_len) {
		size_t body = (message_len ? st->tag_len[T_STATUS_MESSAGE] + varint_size(message_len) + message_len : 0) +
			      (code ? st->tag_len[T_STATUS_CODE] + 1 : 0);

		if (reserve(b, 2 + 10 + body))
			return -1;
		put_tag(b, st, T_STATUS);
		put_varint(b, body);
		if (message_len) {
			put_tag(b, st, T_STATUS_MESSAGE);
			put_varint(b, message_len);
			put_bytes(b, message, message_len);
		}
		if (code) {
			put_tag(b, st, T_STATUS_CODE);
			b->data[b->len++] = (uint8_t)code;
		}
	}
	if (flags) {
		if (reserve(b, 2 + 4))
			return -1;
		put_tag(b, st, T_FLAGS);
		put_le(b, flags, 4);
	}
	return 1;
}

/* -- the module ------------------------------------------------------------------------------- */

static PyObject *encode(PyObject *module, PyObject *spans)
{
	module_state *st = state_of(module);
	buffer b = { 0 };
	PyObject *out, *item;
	Py_ssize_t n;

	if (!st->configured) {
		PyErr_SetString(PyExc_RuntimeError, "_span_wire.configure() was not called");
		return NULL;
	}
	if (!PyList_CheckExact(spans)) {
		PyErr_SetString(PyExc_TypeError, "encode() takes a list of spans");
		return NULL;
	}
	n = PyList_GET_SIZE(spans);
	out = PyList_New(n);
	if (!out)
		return NULL;
	for (Py_ssize_t i = 0; i < n; i++) {
		int r;

		b.len = 0;
		r = put_span(&b, st, PyList_GET_ITEM(spans, i));
		if (r < 0)
			goto fail;
		if (r == 0) {
			item = Py_None;
			Py_INCREF(item);
		} else {
			item = PyBytes_FromStringAndSize((const char *)b.data, b.len);
			if (!item)
				goto fail;
		}
		PyList_SET_ITEM(out, i, item);
	}
	PyMem_Free(b.data);
	return out;
fail:
	PyMem_Free(b.data);
	Py_DECREF(out);
	return NULL;
}

static int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
	PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
	PyMemberDef *member;

	if (!descr)
		return -1;
	if (Py_TYPE(descr) != &PyMemberDescr_Type) {
		PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, name);
		Py_DECREF(descr);
		return -1;
	}
	member = ((PyMemberDescrObject *)descr)->d_member;
	if (member->type != T_OBJECT_EX) {
		PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
		Py_DECREF(descr);
		return -1;
	}
	*offset = member->offset;
	Py_DECREF(descr);
	return 0;
}

static PyObject *configure(PyObject *module, PyObject *args)
{
	module_state *st = state_of(module);
	PyObject *span_type, *kind_type, *status_type, *tags;
	Py_ssize_t offsets[F_COUNT];

	if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyType_Type, &span_type, &PyType_Type, &kind_type, &PyType_Type,
			      &status_type, &PyTuple_Type, &tags))
		return NULL;
	if (PyTuple_GET_SIZE(tags) != T_COUNT) {
		PyErr_Format(PyExc_ValueError, "configure() takes %d tags", T_COUNT);
		return NULL;
	}
	for (int i = 0; i < T_COUNT; i++) {
		PyObject *tag = PyTuple_GET_ITEM(tags, i);
		Py_ssize_t n = PyBytes_Check(tag) ? PyBytes_GET_SIZE(tag) : 0;

		if (n < 1 || n > 2) {
			PyErr_Format(PyExc_ValueError, "tag %d is not one or two bytes", i);
			return NULL;
		}
	}
	for (int i = 0; i < F_COUNT; i++) {
		if (slot_offset((PyTypeObject *)span_type, field_names[i], &offsets[i]))
			return NULL;
	}
	for (int i = 0; i < T_COUNT; i++) {
		PyObject *tag = PyTuple_GET_ITEM(tags, i);

		st->tag_len[i] = (uint8_t)PyBytes_GET_SIZE(tag);
		memcpy(st->tags[i], PyBytes_AS_STRING(tag), st->tag_len[i]);
	}
	memcpy(st->offsets, offsets, sizeof(offsets));
	Py_XSETREF(st->span_type, (PyTypeObject *)Py_NewRef(span_type));
	Py_XSETREF(st->kind_type, (PyTypeObject *)Py_NewRef(kind_type));
	Py_XSETREF(st->status_type, (PyTypeObject *)Py_NewRef(status_type));
	st->configured = 1;
	Py_RETURN_NONE;
}

static int traverse(PyObject *module, visitproc visit, void *arg)
{
	module_state *st = state_of(module);

	Py_VISIT(st->span_type);
	Py_VISIT(st->kind_type);
	Py_VISIT(st->status_type);
	return 0;
}

static int clear(PyObject *module)
{
	module_state *st = state_of(module);

	Py_CLEAR(st->span_type);
	Py_CLEAR(st->kind_type);
	Py_CLEAR(st->status_type);
	st->configured = 0;
	return 0;
}

static void free_module(void *module)
{
	clear((PyObject *)module);
}

static PyMethodDef methods[] = {
	{ "encode", encode, METH_O,
	  "encode(spans: list) -> list: each span's serialized Span message, or None where Python must encode it." },
	{ "configure", configure, METH_VARARGS,
	  "configure(span_type, kind_type, status_type, tags: tuple[bytes]): the usual classes, the field tags." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, "_span_wire", "Serialized OTLP Span messages (see _span_wire.c).", sizeof(module_state),
	methods, NULL, traverse, clear, free_module,
};

PyMODINIT_FUNC PyInit__span_wire(void)
{
	PyObject *m = PyModule_Create(&module_def);

	if (m && PyModule_AddIntConstant(m, "TAG_COUNT", T_COUNT)) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
