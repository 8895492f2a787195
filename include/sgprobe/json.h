/*
 * json: the one way sgprobe turns untrusted bytes into a cJSON tree.
 */
#ifndef SGPROBE_JSON_H
#define SGPROBE_JSON_H

#include <stddef.h>

#include <cJSON.h>

/**
 * Parses `len` bytes of JSON that need not be NUL-terminated: they are copied
 * with a terminator (cJSON reads one byte ahead in places), and anything but
 * whitespace after the value is an error. Returns the tree, owned by the caller
 * (cJSON_Delete()), and 0 in *result; or NULL with -ENOMEM or -EINVAL in *result
 * and, for -EINVAL, the 1-based line of the error in *line.
 */
cJSON *json_parse(const char *text, size_t len, unsigned *line, int *result);

#endif
