/*
 * libFuzzer target of report_decode(): whatever it accepts must survive a round
 * trip. The decoded report is encoded, the encoding decoded again, and that must
 * succeed and encode to the very same string. A refusal must leave a non-empty
 * message NUL-terminated within REPORT_ERR_MAX bytes. Anything else abort()s;
 * memory errors, leaks and undefined behaviour are caught by the sanitizers.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sgprobe/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err)
{
	if (!memchr(err, '\0', REPORT_ERR_MAX) || !err[0]) {
		fprintf(stderr, "fuzz_report: report_decode failed without a message\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[REPORT_ERR_MAX];
	report_t *r1;
	report_t *r2;
	char *json1;
	char *json2;
	bool too_large = false;

	/* Not '\0': a message left unterminated shows. */
	memset(err, 'X', sizeof(err));
	r1 = report_decode((const char *)data, size, err, sizeof(err), &too_large);
	if (!r1) {
		check_err(err);
		return 0;
	}
	json1 = report_encode(r1);
	if (!json1) {
		fprintf(stderr, "fuzz_report: report_encode refused a decoded report\n");
		abort();
	}
	memset(err, 'X', sizeof(err));
	r2 = report_decode(json1, strlen(json1), err, sizeof(err), &too_large);
	if (!r2) {
		fprintf(stderr, "fuzz_report: its own encoding does not decode: %.*s\n%s\n",
		        REPORT_ERR_MAX, err, json1);
		abort();
	}
	json2 = report_encode(r2);
	if (!json2 || strcmp(json1, json2) != 0) {
		fprintf(stderr, "fuzz_report: the round trip changed the encoding\n%s\n%s\n", json1,
		        json2 ? json2 : "(null)");
		abort();
	}
	free(json2);
	free(json1);
	report_free(r2);
	report_free(r1);
	return 0;
}
