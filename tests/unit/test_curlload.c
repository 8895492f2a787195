/*
 * Unit tests of agent/curlload.c: libcurl loaded on first use, as sgprobe-agent
 * gets it. This binary, like the agent, is not linked with libcurl (the
 * Makefile's CURLLOAD_TESTS): every curl_* call below goes through the loader.
 * The tests run in order; the first one sees the process before libcurl.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <uv.h>

#include "../../agent/curlload.h"
#include "sgprobe/curluv.h"

#include "http_fixture.h"
#include "sgprobe/container.h"

/* Whether a library whose path contains `name` is mapped into this process. */
static bool mapped(const char *name)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, name) != NULL;
	fclose(f);
	return found;
}

static void test_curlload_nothing_loaded_before_first_use(void **state)
{
	char err[256];

	(void)state;
	/* The agent's own start (--once without --push, health, --help) stays light. */
	assert_false(mapped("libcurl"));

	/* A library that is not there: the error names it, and nothing is loaded. */
	assert_int_equal(curlload_open("libsgprobe-no-such-curl.so.4", err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot load libcurl (libsgprobe-no-such-curl.so.4)"));
	assert_false(mapped("libcurl"));

	/* A library that is there but is not libcurl: the missing function is named. */
	assert_int_equal(curlload_open("libz.so.1", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "libz.so.1 has no curl_global_init: is it libcurl 7.62 or later?");
	assert_false(mapped("libcurl"));

	/* The first libcurl call loads it. */
	assert_int_equal(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
	assert_true(mapped("libcurl.so.4"));
	assert_string_equal(curl_easy_strerror(CURLE_COULDNT_CONNECT),
	                    "Couldn't connect to server");

	/* Once loaded, asking again is a no-op, whatever the name. */
	assert_int_equal(curlload_open("libsgprobe-no-such-curl.so.4", err, sizeof(err)), 0);
}

/* One transfer on a loop, with the scripted server of http_fixture.h. */
typedef struct {
	uv_loop_t loop;
	curluv_t cu;
	fake_t fake;
	CURL *easy;
	CURLcode result;
	int calls;
	curluv_body_t body;
} xfer_t;

static void on_done(CURL *easy, CURLcode result, void *arg)
{
	xfer_t *x = arg;

	assert_ptr_equal(easy, x->easy);
	x->result = result;
	x->calls++;
	fake_close(&x->fake);
	curluv_dispose(&x->cu, NULL);
}

static void test_curlload_every_option_type_reaches_libcurl(void **state)
{
	static const fake_answer_t answer[] = {
	    {200, "Content-Type: text/plain\r\n", "answered", 0},
	};
	struct curl_slist *headers = NULL;
	curl_off_t uploaded = -1;
	long status = 0;
	char *effective = NULL;
	char url[128], value[64];
	xfer_t x;

	(void)state;
	memset(&x, 0, sizeof(x));
	x.body.max = 256;
	assert_int_equal(uv_loop_init(&x.loop), 0);
	fake_start(&x.fake, &x.loop, answer, 1);
	/* The multi options (socket and timer functions, their data) go through here. */
	assert_int_equal(curluv_init(&x.cu, &x.loop), 0);
	x.easy = curl_easy_init();
	assert_non_null(x.easy);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/reports", x.fake.port);
	headers = curl_slist_append(headers, "X-Sgprobe-Test: through-the-loader");
	assert_non_null(headers);
	/* One option of each type: a string, a long, a function, a pointer, an off_t. */
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_URL, url), CURLE_OK);
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_TIMEOUT_MS, 10000L), CURLE_OK);
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_WRITEFUNCTION, curluv_body_write),
	                 CURLE_OK);
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_WRITEDATA, &x.body), CURLE_OK);
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, headers), CURLE_OK);
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, "hello, world"), CURLE_OK);
	/* Only the first 5 bytes: the size must arrive as a curl_off_t to mean 5. */
	assert_int_equal(curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)5),
	                 CURLE_OK);
	assert_int_equal(curluv_add(&x.cu, x.easy, on_done, &x), 0);
	assert_int_equal(uv_run(&x.loop, UV_RUN_DEFAULT), 0);

	assert_int_equal(x.calls, 1);
	assert_int_equal(x.result, CURLE_OK);
	assert_string_equal(curluv_body_str(&x.body), "answered");
	assert_int_equal(x.fake.n_reqs, 1);
	assert_string_equal(x.fake.reqs[0].method, "POST");
	assert_string_equal(x.fake.reqs[0].body, "hello");
	assert_string_equal(
	    fake_req_header(&x.fake.reqs[0], "x-sgprobe-test", value, sizeof(value)),
	    "through-the-loader");
	/* getinfo: a long, a curl_off_t and a string. */
	assert_int_equal(curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status), CURLE_OK);
	assert_int_equal(status, 200);
	assert_int_equal(curl_easy_getinfo(x.easy, CURLINFO_SIZE_UPLOAD_T, &uploaded), CURLE_OK);
	assert_int_equal(uploaded, 5);
	assert_int_equal(curl_easy_getinfo(x.easy, CURLINFO_EFFECTIVE_URL, &effective), CURLE_OK);
	assert_string_equal(effective, url);

	curl_slist_free_all(headers);
	curl_easy_cleanup(x.easy);
	curluv_body_dispose(&x.body);
	assert_int_equal(uv_loop_close(&x.loop), 0);
	fake_free(&x.fake);
}

static void test_curlload_url_api_and_escape(void **state)
{
	CURLU *u = curl_url();
	char *part = NULL, *escaped;
	CURL *easy = curl_easy_init();

	(void)state;
	assert_non_null(u);
	assert_non_null(easy);
	assert_int_equal(
	    curl_url_set(u, CURLUPART_URL, "https://collector.example:8443/v1/plan", 0), CURLUE_OK);
	assert_int_equal(curl_url_get(u, CURLUPART_HOST, &part, 0), CURLUE_OK);
	assert_string_equal(part, "collector.example");
	curl_free(part);
	assert_int_equal(curl_url_get(u, CURLUPART_PORT, &part, 0), CURLUE_OK);
	assert_string_equal(part, "8443");
	curl_free(part);
	escaped = curl_easy_escape(easy, "role=gguf model", 0);
	assert_string_equal(escaped, "role%3Dgguf%20model");
	curl_free(escaped);
	curl_url_cleanup(u);
	curl_easy_cleanup(easy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_curlload_nothing_loaded_before_first_use),
	    cmocka_unit_test(test_curlload_every_option_type_reaches_libcurl),
	    cmocka_unit_test(test_curlload_url_api_and_escape),
	};
	int failed;

	/* Loopback only, never through a proxy. */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	signal(SIGPIPE, SIG_IGN);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return failed;
}
