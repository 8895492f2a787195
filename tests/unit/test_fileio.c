/*
 * Tests of lib/fileio.c: whole reads of files and pipes, bounded, NUL-terminated,
 * with a clear refusal beyond the limit and the open() error passed through.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sgprobe/fileio.h"

/* Writes `n` bytes of 'x' to a new temporary file; returns its path (static). */
static const char *file_of(size_t n)
{
	static char path[64];
	char *data = malloc(n + 1);
	FILE *f;
	int fd;

	assert_non_null(data);
	memset(data, 'x', n);
	snprintf(path, sizeof(path), "/tmp/sgprobe-fileio.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	free(data);
	return path;
}

static void test_reads_up_to_the_limit_nul_terminated(void **unused)
{
	static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 100000};
	size_t i, len;
	char *buf;

	(void)unused;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *path = file_of(sizes[i]);

		/* Exactly at the limit is taken. */
		assert_int_equal(fileio_read(path, sizes[i], &buf, &len), 0);
		assert_int_equal(len, sizes[i]);
		assert_int_equal(buf[len], '\0');
		assert_true(len == 0 || (buf[0] == 'x' && buf[len - 1] == 'x'));
		fileio_free(buf, len);
		/* One byte over is refused whole. */
		if (sizes[i] > 0) {
			assert_int_equal(fileio_read(path, sizes[i] - 1, &buf, &len), -EFBIG);
			assert_null(buf);
			assert_int_equal(len, 0);
		}
		unlink(path);
	}
}

static void test_reads_a_pipe(void **unused)
{
	char chunk[1000];
	int fds[2];
	size_t len;
	char *buf;
	int i;

	(void)unused;
	/* 5000 bytes in a pipe (within its buffer): no size known in advance. */
	assert_int_equal(pipe(fds), 0);
	memset(chunk, 'p', sizeof(chunk));
	for (i = 0; i < 5; i++)
		assert_int_equal(write(fds[1], chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	close(fds[1]);
	assert_int_equal(fileio_read_fd(fds[0], 5000, &buf, &len), 0);
	close(fds[0]);
	assert_int_equal(len, 5000);
	assert_int_equal(buf[4999], 'p');
	assert_int_equal(buf[5000], '\0');
	fileio_free(buf, len);

	assert_int_equal(pipe(fds), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(write(fds[1], chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	close(fds[1]);
	assert_int_equal(fileio_read_fd(fds[0], 4999, &buf, &len), -EFBIG);
	close(fds[0]);
	assert_null(buf);
}

static void test_open_errors_pass_through(void **unused)
{
	size_t len = 7;
	char *buf = (char *)&len;

	(void)unused;
	assert_int_equal(fileio_read("/nonexistent/sgprobe", 10, &buf, &len), -ENOENT);
	assert_null(buf);
	assert_int_equal(len, 0);
	/* A directory opens, but cannot be read. */
	assert_int_equal(fileio_read("/", 10, &buf, &len), -EISDIR);
	fileio_free(NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_up_to_the_limit_nul_terminated),
	    cmocka_unit_test(test_reads_a_pipe),
	    cmocka_unit_test(test_open_errors_pass_through),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
