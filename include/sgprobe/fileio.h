/*
 * fileio: the one way sgprobe reads a whole file (or a pipe) into memory,
 * bounded, and safe for secrets: the keys file and its secret files, the
 * matrix, the agent's health file, import-sg's inputs, sign-request's stdin.
 */
#ifndef SGPROBE_FILEIO_H
#define SGPROBE_FILEIO_H

#include <stddef.h>

/**
 * Reads all of `fd` (a regular file or a pipe; not closed) into a new buffer
 * with a NUL after the data: `*len` bytes at `*out`, which the caller releases
 * with fileio_free(*out, *len). At most `limit` bytes: one more is read to
 * tell a larger input, which is refused whole. No buffer is ever released
 * without being wiped first (no realloc()), so the data may be a secret.
 * Returns 0; -EFBIG beyond `limit`; -ENOMEM; or a negative errno from read().
 * On error nothing is returned.
 */
int fileio_read_fd(int fd, size_t limit, char **out, size_t *len);

/** fileio_read_fd() on the file at `path`; also a negative errno from open(). */
int fileio_read(const char *path, size_t limit, char **out, size_t *len);

/** Wipes `len` + 1 bytes at `buf` (the data and its NUL) and frees it. NULL does nothing. */
void fileio_free(char *buf, size_t len);

#endif
