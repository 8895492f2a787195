/*
 * Tests of lib/cloudwatch.c: the PutMetricData Query body within the API's
 * limits, gzip that zlib reads back, EMF lines with the structure CloudWatch
 * Logs expects, and CloudWatch's XML errors.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <zlib.h>

#include "sgprobe/cloudwatch.h"

#define T0 1796119200123ull /* 2026-12-01T10:00:00.123Z */

static void datum(cw_datum_t *d, const char *name, double v, const char *cluster, const char *role)
{
	const char *dims[] = {"Cluster", cluster, "SourceRole", role};

	assert_int_equal(cw_datum_init(d, name, "Count", v, T0, dims, role ? 2 : 1), 0);
}

static void test_form_body_is_the_query_protocol(void **unused)
{
	cw_datum_t d[2];
	char *body;
	size_t len, taken;

	(void)unused;
	datum(&d[0], "UnexpectedOpenPaths", 1, "afirgen prod", NULL);
	datum(&d[1], "ReportingAgents", 3, "afirgen prod", "nginx");
	assert_int_equal(cw_form_encode("SGProbe", d, 2, &body, &len, &taken), 0);
	assert_int_equal(taken, 2);
	assert_int_equal(len, strlen(body));
	assert_string_equal(body, "Action=PutMetricData&Version=2010-08-01&Namespace=SGProbe"
	                          "&MetricData.member.1.MetricName=UnexpectedOpenPaths"
	                          "&MetricData.member.1.Dimensions.member.1.Name=Cluster"
	                          "&MetricData.member.1.Dimensions.member.1.Value=afirgen%20prod"
	                          "&MetricData.member.1.Value=1&MetricData.member.1.Unit=Count"
	                          "&MetricData.member.1.Timestamp=2026-12-01T10%3A00%3A00.123Z"
	                          "&MetricData.member.2.MetricName=ReportingAgents"
	                          "&MetricData.member.2.Dimensions.member.1.Name=Cluster"
	                          "&MetricData.member.2.Dimensions.member.1.Value=afirgen%20prod"
	                          "&MetricData.member.2.Dimensions.member.2.Name=SourceRole"
	                          "&MetricData.member.2.Dimensions.member.2.Value=nginx"
	                          "&MetricData.member.2.Value=3&MetricData.member.2.Unit=Count"
	                          "&MetricData.member.2.Timestamp=2026-12-01T10%3A00%3A00.123Z");
	free(body);
	cw_datum_dispose(&d[0]);
	cw_datum_dispose(&d[1]);
}

static void test_form_stops_at_1000_datums(void **unused)
{
	size_t n = 2500, i, taken, len, total = 0, calls = 0;
	cw_datum_t *d = calloc(n, sizeof(*d));
	char *body;

	(void)unused;
	assert_non_null(d);
	for (i = 0; i < n; i++)
		datum(&d[i], "BlockedPaths", 1, "c1", "nginx");
	while (total < n) {
		assert_int_equal(
		    cw_form_encode("SGProbe", d + total, n - total, &body, &len, &taken), 0);
		assert_true(taken <= CW_MAX_DATUMS_PER_CALL);
		assert_true(len <= CW_MAX_CALL_BYTES);
		total += taken;
		calls++;
		free(body);
	}
	assert_int_equal(calls, 3);
	assert_int_equal(total, n);
	for (i = 0; i < n; i++)
		cw_datum_dispose(&d[i]);
	free(d);
}

static void test_form_stops_at_one_megabyte(void **unused)
{
	const char *dims[2 * CW_MAX_DIMENSIONS];
	char names[CW_MAX_DIMENSIONS][8], value[CW_NAME_MAX + 1];
	size_t n = 1000, i, taken, len, total = 0;
	cw_datum_t *d = calloc(n, sizeof(*d));
	char *body;

	(void)unused;
	assert_non_null(d);
	/* Every value a space: 255 × 3 bytes encoded, 30 dimensions a datum. */
	memset(value, ' ', CW_NAME_MAX);
	value[CW_NAME_MAX] = '\0';
	for (i = 0; i < CW_MAX_DIMENSIONS; i++) {
		snprintf(names[i], sizeof(names[i]), "D%zu", i);
		dims[2 * i] = names[i];
		dims[2 * i + 1] = value;
	}
	for (i = 0; i < n; i++)
		assert_int_equal(cw_datum_init(&d[i], "M", "Count", 1, T0, dims, CW_MAX_DIMENSIONS),
		                 0);
	while (total < n) {
		assert_int_equal(
		    cw_form_encode("SGProbe", d + total, n - total, &body, &len, &taken), 0);
		assert_true(len <= CW_MAX_CALL_BYTES);
		assert_true(taken < n);
		total += taken;
		free(body);
	}
	assert_int_equal(total, n);
	for (i = 0; i < n; i++)
		cw_datum_dispose(&d[i]);
	free(d);
}

static void test_datum_limits(void **unused)
{
	const char *dims[2 * (CW_MAX_DIMENSIONS + 1)];
	char long_name[CW_NAME_MAX + 2], value[CW_VALUE_MAX + 2];
	cw_datum_t d;
	size_t i;

	(void)unused;
	for (i = 0; i < 2 * (CW_MAX_DIMENSIONS + 1); i++)
		dims[i] = "x";
	assert_int_equal(cw_datum_init(&d, "M", "Count", 1, T0, dims, CW_MAX_DIMENSIONS + 1),
	                 -EINVAL);
	assert_int_equal(cw_datum_init(&d, "", "Count", 1, T0, dims, 0), -EINVAL);
	assert_int_equal(cw_datum_init(&d, "M", "Count", NAN, T0, dims, 0), -EINVAL);
	assert_int_equal(cw_datum_init(&d, "M", "Count", INFINITY, T0, dims, 0), -EINVAL);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(cw_datum_init(&d, long_name, "Count", 1, T0, dims, 0), -EINVAL);
	/* A dimension's name is held to 255 bytes, its value to 1024 (a report's strings). */
	dims[0] = long_name;
	assert_int_equal(cw_datum_init(&d, "M", "Count", 1, T0, dims, 1), -EINVAL);
	dims[0] = "Cluster";
	memset(value, 'v', sizeof(value) - 1);
	value[CW_VALUE_MAX] = '\0';
	dims[1] = value;
	assert_int_equal(cw_datum_init(&d, "M", "Count", 1, T0, dims, 1), 0);
	assert_int_equal(strlen(d.dims[0].value), CW_VALUE_MAX);
	cw_datum_dispose(&d);
	value[CW_VALUE_MAX] = 'v';
	value[CW_VALUE_MAX + 1] = '\0';
	assert_int_equal(cw_datum_init(&d, "M", "Count", 1, T0, dims, 1), -EINVAL);
	dims[1] = "";
	assert_int_equal(cw_datum_init(&d, "M", "Count", 1, T0, dims, 1), -EINVAL);
}

static void test_gzip_round_trip(void **unused)
{
	static const char text[] = "Action=PutMetricData&Version=2010-08-01&Namespace=SGProbe";
	unsigned char *gz, back[256];
	size_t gz_len;
	z_stream z;

	(void)unused;
	assert_int_equal(cw_gzip(text, strlen(text), &gz, &gz_len), 0);
	/* The gzip magic, then deflate. */
	assert_true(gz_len > 18);
	assert_int_equal(gz[0], 0x1f);
	assert_int_equal(gz[1], 0x8b);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
	z.next_in = gz;
	z.avail_in = (uInt)gz_len;
	z.next_out = back;
	z.avail_out = sizeof(back);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, strlen(text));
	assert_memory_equal(back, text, strlen(text));
	inflateEnd(&z);
	free(gz);
}

static void test_emf_line_structure(void **unused)
{
	cw_datum_t d[2];
	cJSON *o, *aws, *dir, *dims, *metrics;
	char *line;

	(void)unused;
	datum(&d[0], "ReportingAgents", 2, "c1", "nginx");
	datum(&d[1], "StaleAgents", 0, "c1", "nginx");
	assert_int_equal(cw_emf_encode("SGProbe", d, 2, &line), 0);
	assert_null(strchr(line, '\n'));
	o = cJSON_Parse(line);
	assert_non_null(o);
	aws = cJSON_GetObjectItemCaseSensitive(o, "_aws");
	assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(aws, "Timestamp")));
	assert_true(cJSON_GetObjectItemCaseSensitive(aws, "Timestamp")->valuedouble == (double)T0);
	assert_int_equal(
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(aws, "CloudWatchMetrics")), 1);
	dir = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(aws, "CloudWatchMetrics"), 0);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(dir, "Namespace")->valuestring,
	                    "SGProbe");
	dims = cJSON_GetObjectItemCaseSensitive(dir, "Dimensions");
	assert_int_equal(cJSON_GetArraySize(dims), 1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(dims, 0)), 2);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(dims, 0), 0)->valuestring,
	                    "Cluster");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetArrayItem(dims, 0), 1)->valuestring,
	                    "SourceRole");
	metrics = cJSON_GetObjectItemCaseSensitive(dir, "Metrics");
	assert_int_equal(cJSON_GetArraySize(metrics), 2);
	assert_string_equal(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(metrics, 1), "Name")->valuestring,
	    "StaleAgents");
	assert_string_equal(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(metrics, 1), "Unit")->valuestring,
	    "Count");
	/* The dimension values and metric values are root members. */
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "Cluster")->valuestring, "c1");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "SourceRole")->valuestring,
	                    "nginx");
	assert_true(cJSON_GetObjectItemCaseSensitive(o, "ReportingAgents")->valuedouble == 2);
	assert_true(cJSON_GetObjectItemCaseSensitive(o, "StaleAgents")->valuedouble == 0);
	cJSON_Delete(o);
	free(line);
	cw_datum_dispose(&d[0]);
	cw_datum_dispose(&d[1]);
}

static void test_emf_limits(void **unused)
{
	cw_datum_t d[CW_EMF_MAX_METRICS + 1];
	char name[16];
	char *line = NULL;
	size_t i;

	(void)unused;
	for (i = 0; i <= CW_EMF_MAX_METRICS; i++) {
		snprintf(name, sizeof(name), "M%zu", i);
		datum(&d[i], name, 1, "c1", NULL);
	}
	assert_int_equal(cw_emf_encode("SGProbe", d, CW_EMF_MAX_METRICS + 1, &line), -E2BIG);
	assert_null(line);
	assert_int_equal(cw_emf_encode("SGProbe", d, CW_EMF_MAX_METRICS, &line), 0);
	free(line);
	for (i = 0; i <= CW_EMF_MAX_METRICS; i++)
		cw_datum_dispose(&d[i]);
	/* One line is one set of dimension values. */
	datum(&d[0], "A", 1, "c1", NULL);
	datum(&d[1], "B", 1, "c2", NULL);
	assert_int_equal(cw_emf_encode("SGProbe", d, 2, &line), -EINVAL);
	cw_datum_dispose(&d[1]);
	/* A metric named like a dimension would collide at the root. */
	datum(&d[1], "Cluster", 1, "c1", NULL);
	assert_int_equal(cw_emf_encode("SGProbe", d, 2, &line), -EINVAL);
	cw_datum_dispose(&d[1]);
	datum(&d[1], "A", 1, "c1", NULL);
	assert_int_equal(cw_emf_encode("SGProbe", d, 2, &line), -EINVAL);
	cw_datum_dispose(&d[0]);
	cw_datum_dispose(&d[1]);
}

static void test_xml_error(void **unused)
{
	static const char xml[] =
	    "<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">"
	    "<Error><Type>Sender</Type><Code>Throttling</Code>"
	    "<Message>Rate\nexceeded</Message></Error><RequestId>r-1</RequestId></ErrorResponse>";
	char code[32], msg[64], tiny[5];

	(void)unused;
	assert_int_equal(cw_xml_error(xml, strlen(xml), code, sizeof(code), msg, sizeof(msg)), 0);
	assert_string_equal(code, "Throttling");
	assert_string_equal(msg, "Rate exceeded");
	assert_true(cw_error_is_throttling(code));
	assert_false(cw_error_is_throttling("InvalidParameterValue"));
	assert_false(cw_error_is_throttling(NULL));
	assert_true(cw_error_is_auth("ExpiredToken"));
	assert_true(cw_error_is_auth("RequestExpired"));
	assert_true(cw_error_is_auth("AccessDenied"));
	assert_false(cw_error_is_auth("Throttling"));
	assert_false(cw_error_is_auth("InvalidParameterValue"));
	assert_false(cw_error_is_auth(NULL));
	assert_int_equal(cw_xml_error(xml, strlen(xml), tiny, sizeof(tiny), msg, sizeof(msg)), 0);
	assert_string_equal(tiny, "Thro");
	assert_int_equal(cw_xml_error("<html>502</html>", 16, code, sizeof(code), msg, sizeof(msg)),
	                 -ENOENT);
	assert_string_equal(code, "");
	assert_string_equal(msg, "");
	assert_int_equal(cw_xml_error(NULL, 0, code, sizeof(code), msg, sizeof(msg)), -ENOENT);
	/* A document cut before the closing tag has no code. */
	assert_int_equal(cw_xml_error(xml, 60, code, sizeof(code), msg, sizeof(msg)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_form_body_is_the_query_protocol),
	    cmocka_unit_test(test_form_stops_at_1000_datums),
	    cmocka_unit_test(test_form_stops_at_one_megabyte),
	    cmocka_unit_test(test_datum_limits),
	    cmocka_unit_test(test_gzip_round_trip),
	    cmocka_unit_test(test_emf_line_structure),
	    cmocka_unit_test(test_emf_limits),
	    cmocka_unit_test(test_xml_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
