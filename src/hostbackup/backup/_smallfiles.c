/* The backup's per-file hot path in C: one small regular file into the tar stream.
 *
 * Most files of a hosting account are small (CMS code, mail messages). For each of them the pure
 * Python path in archive.py makes about ten calls (open, fstat, header fields, struct packing,
 * read, SHA-256, checksum line), and that interpreter time, ~9 us a file, was the longest part of
 * the critical path on two cores. This module does the same work in one call and produces the
 * same bytes: the ustar header, the data, the padding, and the file's line of SHA256SUMS.
 *
 * It only takes the common case and gives up (returns None, nothing written) on anything else:
 * a file of 64 KiB or more, a name that needs a pax header or escaping, an owner whose name the
 * caller has not looked up yet, a failed open or stat, a short or long read. The Python path then
 * handles that file from the start, with its warnings, so there is one behaviour to reason about.
 * The build is optional (setup.py); without it the Python path does everything.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define BLOCK_SIZE 512
#define SMALL_FILE_MAX (64 * 1024) /* archive.py's _DIRECT_WRITE: bigger files stream in chunks */
#define NAME_MAX_USTAR 100
#define OWNER_MAX 31
#define OCTAL_7_MAX 07777777ULL
#define OCTAL_11_MAX 077777777777LL
#define DIGEST_SIZE 32
#define FILE_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)

static const EVP_MD *sha256;

/* `width` octal digits and a NUL, like b"%0*o\0". */
static void put_octal(char *field, int width, unsigned long long value) {
    field[width] = '\0';
    for (int i = width - 1; i >= 0; i--) {
        field[i] = (char)('0' + (value & 7));
        value >>= 3;
    }
}

/* A member name that the ustar name field holds as is and sha256sum prints without escaping. */
static int plain_name(const char *name, Py_ssize_t length) {
    if (length > NAME_MAX_USTAR)
        return 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x80 || c == '\n' || c == '\r' || c == '\\')
            return 0;
    }
    return 1;
}

/* The cached owner name of `id` if it fits the ustar field as plain ASCII, else NULL. */
static PyObject *owner_name(PyObject *names, unsigned long id) {
    PyObject *key = PyLong_FromUnsignedLong(id);
    if (key == NULL)
        return NULL;
    PyObject *name = PyDict_GetItemWithError(names, key); /* borrowed */
    Py_DECREF(key);
    if (name == NULL || !PyBytes_Check(name) || PyBytes_GET_SIZE(name) > OWNER_MAX)
        return NULL;
    const char *raw = PyBytes_AS_STRING(name);
    for (Py_ssize_t i = 0; i < PyBytes_GET_SIZE(name); i++)
        if ((unsigned char)raw[i] >= 0x80)
            return NULL;
    return name;
}

static void fill_header(char *header, const char *member, Py_ssize_t member_length, const struct stat *st,
                        PyObject *uname, PyObject *gname) {
    memset(header, 0, BLOCK_SIZE);
    memcpy(header, member, (size_t)member_length);
    put_octal(header + 100, 7, st->st_mode & 07777);
    put_octal(header + 108, 7, st->st_uid);
    put_octal(header + 116, 7, st->st_gid);
    put_octal(header + 124, 11, (unsigned long long)st->st_size);
    put_octal(header + 136, 11, (unsigned long long)st->st_mtim.tv_sec);
    memset(header + 148, ' ', 8); /* the checksum counts its own field as spaces */
    header[156] = '0';            /* REGTYPE */
    memcpy(header + 257, "ustar\0" "00", 8);
    memcpy(header + 265, PyBytes_AS_STRING(uname), (size_t)PyBytes_GET_SIZE(uname));
    memcpy(header + 297, PyBytes_AS_STRING(gname), (size_t)PyBytes_GET_SIZE(gname));
    memcpy(header + 329, "0000000\0" "0000000\0", 16);
    unsigned int checksum = 0;
    for (int i = 0; i < BLOCK_SIZE; i++)
        checksum += (unsigned char)header[i];
    put_octal(header + 148, 6, checksum);
    header[155] = ' ';
}

static int append_checksum_line(PyObject *lines, const unsigned char *digest, const char *member,
                                Py_ssize_t member_length) {
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t start = PyByteArray_GET_SIZE(lines);
    if (PyByteArray_Resize(lines, start + 2 * DIGEST_SIZE + 2 + member_length + 1) < 0)
        return -1;
    char *line = PyByteArray_AS_STRING(lines) + start;
    for (int i = 0; i < DIGEST_SIZE; i++) {
        line[2 * i] = hex[digest[i] >> 4];
        line[2 * i + 1] = hex[digest[i] & 15];
    }
    line[2 * DIGEST_SIZE] = ' ';
    line[2 * DIGEST_SIZE + 1] = ' ';
    memcpy(line + 2 * DIGEST_SIZE + 2, member, (size_t)member_length);
    line[2 * DIGEST_SIZE + 2 + member_length] = '\n';
    return 0;
}

/* Open `name` in `dir_fd` without following a symlink; -1 unless it is a small regular file. */
static int open_small_file(int dir_fd, const char *name, struct stat *st) {
    int fd;
    Py_BEGIN_ALLOW_THREADS
    fd = openat(dir_fd, name, FILE_FLAGS);
    if (fd >= 0 && (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_size >= SMALL_FILE_MAX)) {
        close(fd);
        fd = -1;
    }
    Py_END_ALLOW_THREADS
    return fd;
}

PyDoc_STRVAR(pack_small_file_doc,
             "pack_small_file(dir_fd, name, member, stage, checksum_lines, unames, gnames, /)\n--\n\n"
             "Append one small regular file to ``stage`` (ustar header, data, padding) and its\n"
             "line to ``checksum_lines``; return ``(size, mtime)``, or None with nothing written\n"
             "when the file needs the general path.");

static PyObject *pack_small_file(PyObject *module, PyObject *args) {
    int dir_fd;
    const char *name, *member;
    Py_ssize_t name_length, member_length;
    PyObject *stage, *lines, *unames, *gnames;
    if (!PyArg_ParseTuple(args, "iy#y#O!O!O!O!:pack_small_file", &dir_fd, &name, &name_length, &member,
                          &member_length, &PyByteArray_Type, &stage, &PyByteArray_Type, &lines, &PyDict_Type,
                          &unames, &PyDict_Type, &gnames))
        return NULL;
    if (!plain_name(member, member_length))
        Py_RETURN_NONE;
    struct stat st;
    int fd = open_small_file(dir_fd, name, &st);
    if (fd < 0)
        Py_RETURN_NONE;
    PyObject *uname = NULL, *gname = NULL;
    if (st.st_uid <= OCTAL_7_MAX && st.st_gid <= OCTAL_7_MAX && st.st_mtim.tv_sec >= 0 &&
        st.st_mtim.tv_sec <= OCTAL_11_MAX) {
        uname = owner_name(unames, st.st_uid);
        gname = uname == NULL ? NULL : owner_name(gnames, st.st_gid);
    }
    Py_ssize_t size = st.st_size, start = PyByteArray_GET_SIZE(stage);
    Py_ssize_t padded = (size + BLOCK_SIZE - 1) / BLOCK_SIZE * BLOCK_SIZE;
    /* one byte more than the size: a read that fills it shows the file grew */
    if (gname == NULL || PyByteArray_Resize(stage, start + BLOCK_SIZE + padded + 1) < 0) {
        close(fd);
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    char *header = PyByteArray_AS_STRING(stage) + start, *data = header + BLOCK_SIZE;
    unsigned char digest[DIGEST_SIZE];
    ssize_t count;
    int hashed;
    /* Without the GIL the stage cannot move: it is the writer's own buffer, used by this thread. */
    Py_BEGIN_ALLOW_THREADS
    count = read(fd, data, (size_t)size + 1);
    close(fd);
    hashed = count == size && EVP_Digest(data, (size_t)size, digest, NULL, sha256, NULL);
    Py_END_ALLOW_THREADS
    if (!hashed) {
        if (PyByteArray_Resize(stage, start) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    memset(data + size, 0, (size_t)(padded - size));
    fill_header(header, member, member_length, &st, uname, gname);
    if (PyByteArray_Resize(stage, start + BLOCK_SIZE + padded) < 0 ||
        append_checksum_line(lines, digest, member, member_length) < 0)
        return NULL;
    return Py_BuildValue("(nL)", size, (long long)st.st_mtim.tv_sec);
}

static PyMethodDef methods[] = {
    {"pack_small_file", pack_small_file, METH_VARARGS, pack_small_file_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef smallfiles_module = {
    PyModuleDef_HEAD_INIT, "hostbackup.backup._smallfiles", "The backup's small-file path in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__smallfiles(void) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* fetched once, not per digest */
#else
    sha256 = EVP_sha256();
#endif
    if (sha256 == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    return PyModule_Create(&smallfiles_module);
}
