/* The tar reader's per-member hot path in C: one header block parsed.
 *
 * A restore parses one header per member; most of a hosting account is small files, so on a
 * 1 GiB restore that was 58 000 headers at about 2.3 us of interpreter time each in tarstream.py
 * (a struct unpack, a checksum, five octal numbers, two names), a quarter of what the restoring
 * thread still spent in Python. This module returns the same fields in one call.
 *
 * It only takes the common case and declines (returns None) anything else: a checksum that does
 * not match, a number in GNU base-256 or written in any way but octal digits padded with spaces
 * and NULs. The Python parser then reads that header from the start and raises its errors, so
 * there is one behaviour to reason about. The build is optional (setup.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

#define BLOCK_SIZE 512
/* Where the ustar fields start, and their widths (POSIX.1-1988). */
#define NAME 0
#define NAME_SIZE 100
#define MODE 100
#define UID 108
#define GID 116
#define SMALL_NUMBER_SIZE 8
#define SIZE 124
#define MTIME 136
#define BIG_NUMBER_SIZE 12
#define CHECKSUM 148
#define CHECKSUM_SIZE 8
#define TYPEFLAG 156
#define LINKNAME 157
#define MAGIC 257
#define PREFIX 345
#define PREFIX_SIZE 155

/* An octal field as Python's int(field.rstrip(b"\0 ") or b"0", 8) reads it, for the forms that are
 * certain to mean the same there: leading spaces, octal digits, then only spaces and NULs. 0, or -1
 * to decline. The widest field (12 digits) stays far below 2**63. */
static int octal(const unsigned char *field, int width, long long *value) {
    int i = 0;
    *value = 0;
    while (i < width && field[i] == ' ')
        i++;
    for (; i < width && field[i] >= '0' && field[i] <= '7'; i++)
        *value = *value * 8 + (field[i] - '0');
    for (; i < width; i++)
        if (field[i] != ' ' && field[i] != '\0')
            return -1;
    return 0;
}

/* The sum of the header's bytes with the checksum field counted as spaces. */
static long long header_sum(const unsigned char *block) {
    long long total = 0;
    for (int i = 0; i < BLOCK_SIZE; i++)
        total += (i >= CHECKSUM && i < CHECKSUM + CHECKSUM_SIZE) ? ' ' : block[i];
    return total;
}

static Py_ssize_t text_length(const unsigned char *field, Py_ssize_t width) {
    const unsigned char *end = memchr(field, '\0', (size_t)width);
    return end == NULL ? width : end - field;
}

/* Bytes as tarstream.py's _text decodes them: UTF-8, anything else kept byte-exact. */
static PyObject *text(const unsigned char *data, Py_ssize_t length) {
    return PyUnicode_DecodeUTF8((const char *)data, length, "surrogateescape");
}

/* The member's name: POSIX keeps a long name's leading directories in the prefix field. */
static PyObject *member_name(const unsigned char *block) {
    Py_ssize_t name_length = text_length(block + NAME, NAME_SIZE);
    if (memcmp(block + MAGIC, "ustar\0", 6) != 0 || block[PREFIX] == '\0')
        return text(block + NAME, name_length);
    Py_ssize_t prefix_length = text_length(block + PREFIX, PREFIX_SIZE);
    unsigned char joined[PREFIX_SIZE + 1 + NAME_SIZE];
    memcpy(joined, block + PREFIX, (size_t)prefix_length);
    joined[prefix_length] = '/';
    memcpy(joined + prefix_length + 1, block + NAME, (size_t)name_length);
    return text(joined, prefix_length + 1 + name_length);
}

PyDoc_STRVAR(parse_header_doc,
             "parse_header(block, /)\n--\n\n"
             "The fields of a ustar header block, (name, type, mode, uid, gid, size, mtime,\n"
             "linkname), as tarstream.Member takes them; None when the block needs the Python\n"
             "parser (a wrong checksum, a number that is not plain octal).");

/* The fields of a 512-byte block, None to decline, or NULL with an exception set. */
static PyObject *header_fields(const unsigned char *block) {
    long long stored, mode, uid, gid, size, mtime;
    if (octal(block + CHECKSUM, CHECKSUM_SIZE, &stored) < 0 || stored != header_sum(block) ||
        octal(block + MODE, SMALL_NUMBER_SIZE, &mode) < 0 || octal(block + UID, SMALL_NUMBER_SIZE, &uid) < 0 ||
        octal(block + GID, SMALL_NUMBER_SIZE, &gid) < 0 || octal(block + SIZE, BIG_NUMBER_SIZE, &size) < 0 ||
        octal(block + MTIME, BIG_NUMBER_SIZE, &mtime) < 0)
        return Py_NewRef(Py_None);
    PyObject *name = member_name(block);
    if (name == NULL)
        return NULL;
    char type = (char)block[TYPEFLAG];
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    if (type == '\0' && length > 0 && PyUnicode_READ_CHAR(name, length - 1) == '/')
        type = '5'; /* pre-POSIX directories */
    PyObject *linkname = text(block + LINKNAME, text_length(block + LINKNAME, NAME_SIZE));
    if (linkname == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    /* "N" hands both strings to the tuple, or releases them if it cannot be built */
    return Py_BuildValue("(Ny#LLLLLN)", name, &type, (Py_ssize_t)1, mode, uid, gid, size, mtime, linkname);
}

static PyObject *parse_header(PyObject *Py_UNUSED(module), PyObject *argument) {
    Py_buffer view;
    if (PyObject_GetBuffer(argument, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *result = NULL;
    if (view.len != BLOCK_SIZE)
        PyErr_SetString(PyExc_ValueError, "a tar header block is 512 bytes");
    else
        result = header_fields(view.buf);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_header", parse_header, METH_O, parse_header_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tarheader_module = {
    PyModuleDef_HEAD_INIT, "hostbackup.restore._tarheader", "The tar reader's header parser in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__tarheader(void) {
    return PyModule_Create(&tarheader_module);
}
