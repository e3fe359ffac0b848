/* The near-cache's hit, in C (PROTOCOL.md 10.5): one dict lookup and two loads of the board.
 *
 * Written by hand because no library does this: the hit is a handful of operations, and in
 * Python each one is a bytecode (attribute loads, two memoryview reads that each allocate an
 * int, the compares, the mark, the counter): 230 ns a hit against NanaSQLite's 90 ns for its
 * own cached `db[key]`. Here the same steps are one call. `_near.PyHitIndex` is the same
 * thing in Python, used when this module was not built (no C compiler at install time).
 *
 * An `Index` belongs to one `_near.NearCache`: it holds that cache's entries (a dict of
 * `[value, key_word, key_stamp, table_stamp, slow, size, deadline, used]` lists) and a view of
 * its board. Calling it with a key returns the entry's value (which may be `_near.ABSENT`)
 * when the entry is good, and `_near.MISS` otherwise, counting nothing but hits: the full
 * path (`NearCache.lookup`) counts the miss. It runs under the GIL, like the Python code that
 * fills and evicts the entries.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *entries;     /* dict (or a subclass: OrderedDict keeps its items in the dict) */
    PyObject *miss;        /* what a miss returns */
    Py_buffer board;       /* the mapping, as 64-bit words */
    const uint64_t *words;
    Py_ssize_t word_count;
    Py_ssize_t table_word;
    int bypassed;          /* a transaction is open on the connection: everything misses */
    unsigned long long hits;
} Index;

/* Whether the board's word `word` still holds `stamp_object` (a Python int). */
static inline int stamp_matches(const Index *self, Py_ssize_t word, PyObject *stamp_object) {
    if (word < 0 || word >= self->word_count || !PyLong_CheckExact(stamp_object)) return 0;
    unsigned long long stamp = PyLong_AsUnsignedLongLong(stamp_object);
    if (stamp == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    /* Acquire: what was cached under this stamp was published before the daemon bumped it. */
    return __atomic_load_n(&self->words[word], __ATOMIC_ACQUIRE) == stamp;
}

static PyObject *Index_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Index *self = (Index *)callable;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "an Index takes one key");
        return NULL;
    }
    if (self->bypassed || self->words == NULL) return Py_NewRef(self->miss);
    PyObject *entry = PyDict_GetItemWithError(self->entries, args[0]);  /* borrowed */
    if (entry == NULL) {
        PyErr_Clear();  /* missing, or an unhashable key: the full path answers */
        return Py_NewRef(self->miss);
    }
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) < 8) return Py_NewRef(self->miss);
    PyObject *key_word = PyList_GET_ITEM(entry, 1);
    if (PyList_GET_ITEM(entry, 4) != Py_False || !PyLong_CheckExact(key_word)) return Py_NewRef(self->miss);
    Py_ssize_t word = PyLong_AsSsize_t(key_word);
    if (word == -1 && PyErr_Occurred()) { PyErr_Clear(); return Py_NewRef(self->miss); }
    if (!stamp_matches(self, word, PyList_GET_ITEM(entry, 2)) || !stamp_matches(self, self->table_word, PyList_GET_ITEM(entry, 3)))
        return Py_NewRef(self->miss);
    /* used: CLOCK's mark (_near.NearCache) */
    PyObject *old = PyList_GET_ITEM(entry, 7);
    PyList_SET_ITEM(entry, 7, Py_NewRef(Py_True));
    Py_DECREF(old);
    self->hits++;
    return Py_NewRef(PyList_GET_ITEM(entry, 0));
}

/* Index(entries, words, table_word, miss): `words` is the board's memoryview cast to "Q". */
static PyObject *Index_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *entries, *words, *miss;
    Py_ssize_t table_word;
    static char *names[] = {"entries", "words", "table_word", "miss", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OnO", names, &PyDict_Type, &entries, &words, &table_word, &miss)) return NULL;
    Index *self = (Index *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    if (PyObject_GetBuffer(words, &self->board, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (self->board.itemsize != 8 || self->board.format == NULL || (self->board.format[0] != 'Q' && strcmp(self->board.format, "@Q") != 0)
        || ((uintptr_t)self->board.buf % 8) != 0) {
        PyBuffer_Release(&self->board);
        self->board.obj = NULL;
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "the board must be a buffer of aligned 64-bit words");
        return NULL;
    }
    self->words = self->board.buf;
    self->word_count = self->board.len / 8;
    if (table_word < 0 || table_word >= self->word_count) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_ValueError, "table_word is outside the board");
        return NULL;
    }
    self->entries = Py_NewRef(entries);
    self->miss = Py_NewRef(miss);
    self->table_word = table_word;
    self->vectorcall = Index_vectorcall;
    return (PyObject *)self;
}

static void Index_dealloc(Index *self) {
    if (self->board.obj != NULL) PyBuffer_Release(&self->board);
    Py_XDECREF(self->entries);
    Py_XDECREF(self->miss);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Index_get_bypassed(Index *self, void *closure) { return PyBool_FromLong(self->bypassed); }

static int Index_set_bypassed(Index *self, PyObject *value, void *closure) {
    if (value == NULL) { PyErr_SetString(PyExc_TypeError, "bypassed cannot be deleted"); return -1; }
    int truth = PyObject_IsTrue(value);
    if (truth < 0) return -1;
    self->bypassed = truth;
    return 0;
}

static PyObject *Index_get_hits(Index *self, void *closure) { return PyLong_FromUnsignedLongLong(self->hits); }

static PyGetSetDef Index_getset[] = {
    {"bypassed", (getter)Index_get_bypassed, (setter)Index_set_bypassed, "Everything misses while true (a transaction is open).", NULL},
    {"hits", (getter)Index_get_hits, NULL, "Hits this index answered.", NULL},
    {NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "nanad_client._hit.Index",
    .tp_basicsize = sizeof(Index),
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_vectorcall_offset = offsetof(Index, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "A near-cache's hit: index(key) is the entry's value, or miss.",
    .tp_getset = Index_getset,
    .tp_new = Index_new,
};

static struct PyModuleDef hit_module = {
    PyModuleDef_HEAD_INIT, .m_name = "_hit", .m_doc = "The near-cache's hit, in C.", .m_size = -1,
};

PyMODINIT_FUNC PyInit__hit(void) {
    if (PyType_Ready(&IndexType) < 0) return NULL;
    PyObject *module = PyModule_Create(&hit_module);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
