/*
 * fileio: bounded whole-file reads that never leave a copy behind
 * (include/sgprobe/fileio.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sgprobe/fileio.h"

/* Wipes `n` bytes at `p` and frees it. */
static void wipe_free(char *p, size_t n)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

void fileio_free(char *buf, size_t len)
{
	wipe_free(buf, buf ? len + 1 : 0);
}

int fileio_read_fd(int fd, size_t limit, char **out, size_t *outlen)
{
	/* Room for limit + 1 bytes (to tell a larger input) and the NUL. */
	const size_t max = limit + 2;
	struct stat st;
	size_t cap = 4096, len = 0;
	char *buf;

	*out = NULL;
	*outlen = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0)
		cap = (size_t)st.st_size + 2;
	if (cap > max)
		cap = max;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (len + 1 >= cap) {
			size_t ncap = cap > max / 2 ? max : cap * 2;
			char *nbuf;

			if (ncap <= cap)
				break; /* limit + 1 bytes are in */
			nbuf = malloc(ncap);
			if (!nbuf) {
				wipe_free(buf, cap);
				return -ENOMEM;
			}
			memcpy(nbuf, buf, len);
			wipe_free(buf, cap);
			buf = nbuf;
			cap = ncap;
		}
		r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			wipe_free(buf, cap);
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > limit) {
		wipe_free(buf, cap);
		return -EFBIG;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

int fileio_read(const char *path, size_t limit, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int result;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	result = fileio_read_fd(fd, limit, out, len);
	close(fd);
	return result;
}
