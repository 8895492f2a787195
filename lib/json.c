/*
 * json: parsing untrusted JSON bytes, shared by the matrix and report decoders.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/json.h"

cJSON *json_parse(const char *text, size_t len, unsigned *line, int *result)
{
	const char *end = NULL;
	char *copy;
	cJSON *root;
	size_t off;
	size_t i;

	*line = 1;
	copy = malloc(len + 1);
	if (!copy) {
		*result = -ENOMEM;
		return NULL;
	}
	if (len > 0)
		memcpy(copy, text, len);
	copy[len] = '\0';

	root = cJSON_ParseWithLengthOpts(copy, len, &end, false);
	off = (end && end >= copy && end <= copy + len) ? (size_t)(end - copy) : 0;
	if (root) {
		while (off < len && (copy[off] == ' ' || copy[off] == '\t' || copy[off] == '\n' ||
		                     copy[off] == '\r'))
			off++;
		if (off < len) {
			cJSON_Delete(root);
			root = NULL;
		}
	}
	if (!root) {
		for (i = 0; i < off; i++) {
			if (copy[i] == '\n')
				(*line)++;
		}
	}
	free(copy);
	*result = root ? 0 : -EINVAL;
	return root;
}
