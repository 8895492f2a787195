/*
 * output: table, JSON and JUnit renderings of one --once run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "output.h"

#define RED    "\033[1;31m"
#define YELLOW "\033[33m"
#define GREEN  "\033[32m"
#define RESET  "\033[0m"

int output_parse_format(const char *name, output_format_t *out)
{
	if (!name)
		return -EINVAL;
	if (!strcmp(name, "table"))
		*out = OUTPUT_TABLE;
	else if (!strcmp(name, "json"))
		*out = OUTPUT_JSON;
	else if (!strcmp(name, "junit"))
		*out = OUTPUT_JUNIT;
	else
		return -EINVAL;
	return 0;
}

/* "1.234 ms", or "-" when there is no latency. */
static void format_latency(int64_t us, char *buf, size_t len)
{
	if (us < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.3f ms", (double)us / 1000.0);
}

static void format_detail(const output_row_t *r, char *buf, size_t len)
{
	const probe_result_t *res = r->res;

	if (res->tls == VERDICT_TLS_FAIL)
		snprintf(buf, len, "tls: %s", res->detail);
	else if (res->tls == VERDICT_TLS_OK && res->tls_has_expiry)
		snprintf(buf, len, "tls ok, certificate expires in %d days",
		         res->tls_expires_in_days);
	else if (r->verdict == VERDICT_UNVERIFIED && r->target->silent)
		snprintf(buf, len, "%s; silent destination", res->detail);
	else if (r->verdict == VERDICT_UNVERIFIED)
		snprintf(buf, len, "%s; nothing proves %s alive", res->detail,
		         res->address[0] ? res->address : r->target->target);
	else if (r->verdict == VERDICT_VIOLATION && res->state == VERDICT_STATE_OPEN)
		snprintf(buf, len, "connected: the security groups let a denied path through");
	else if (r->verdict == VERDICT_VIOLATION)
		/* Nothing answered the application, yet the packet got through. */
		snprintf(buf, len, "%s: the SYN crossed the security groups", res->detail);
	else if (r->verdict == VERDICT_NO_LISTENER)
		snprintf(buf, len, "%s: the path is open, nothing listens", res->detail);
	else
		snprintf(buf, len, "%s", res->detail);
}

/* Repeats the failing rows under the table: in a plan of a hundred paths, the
 * two that need attention must not have to be searched for. */
static void write_failing(FILE *f, const output_row_t *rows, size_t n, const char *role, bool color)
{
	char detail[2 * PROBE_DETAIL_MAX];
	size_t i;

	fprintf(f, "\nfailing paths:\n");
	for (i = 0; i < n; i++) {
		const output_row_t *r = &rows[i];

		if (!r->failing)
			continue;
		format_detail(r, detail, sizeof(detail));
		fprintf(f, "  %s%-12s%s %s %s -> %s %s:%u (%s): %s\n", color ? RED : "",
		        verdict_name(r->verdict), color ? RESET : "",
		        verdict_expect_name(r->target->expected), role, r->target->dst_role,
		        r->target->target, r->target->port,
		        r->res->address[0] ? r->res->address : "unresolved", detail);
	}
}

static int write_table(FILE *f, const output_row_t *rows, size_t n, const output_summary_t *sum,
                       bool color)
{
	size_t w_dst = strlen("DESTINATION"), w_tgt = strlen("TARGET:PORT"),
	       w_addr = strlen("ADDRESS"), i;
	char tp[MATRIX_MAX_NAME + 8], lat[32], detail[2 * PROBE_DETAIL_MAX];
	int v;

	for (i = 0; i < n; i++) {
		size_t l;

		l = strlen(rows[i].target->dst_role);
		w_dst = l > w_dst ? l : w_dst;
		l = strlen(rows[i].target->target) + 6;
		w_tgt = l > w_tgt ? l : w_tgt;
		l = strlen(rows[i].res->address);
		w_addr = l > w_addr ? l : w_addr;
	}
	fprintf(f, "sgprobe %s → matrix %s\n\n", sum->role, sum->matrix);
	fprintf(f, "  %-12s %-6s %-*s %-*s %-*s %-11s %10s  %s\n", "VERDICT", "EXPECT", (int)w_dst,
	        "DESTINATION", (int)w_tgt, "TARGET:PORT", (int)w_addr, "ADDRESS", "STATE",
	        "LATENCY", "DETAIL");
	for (i = 0; i < n; i++) {
		const output_row_t *r = &rows[i];
		const char *pre = "", *post = "";

		if (color) {
			post = RESET;
			pre = r->failing ? RED : r->verdict == VERDICT_UNVERIFIED ? YELLOW : GREEN;
		}
		snprintf(tp, sizeof(tp), "%s:%u", r->target->target, r->target->port);
		format_latency(r->res->latency_us, lat, sizeof(lat));
		format_detail(r, detail, sizeof(detail));
		/* A failing row is marked in the margin, so it stands out without colour. */
		fprintf(f, "%s %s%-12s%s %-6s %-*s %-*s %-*s %-11s %10s  %s\n",
		        r->failing ? "✗" : " ", pre, verdict_name(r->verdict), post,
		        verdict_expect_name(r->target->expected), (int)w_dst, r->target->dst_role,
		        (int)w_tgt, tp, (int)w_addr, r->res->address[0] ? r->res->address : "-",
		        verdict_state_name(r->res->state), lat, detail);
	}
	if (sum->failing)
		write_failing(f, rows, n, sum->role, color);
	fprintf(f, "\n%s: %zu probes in %.1f s:", sum->role, n, sum->elapsed_s);
	for (v = VERDICT_COUNT_ORDERED - 1; v >= 0; v--) {
		if (sum->counts[v])
			fprintf(f, " %zu %s", sum->counts[v], verdict_name((verdict_t)v));
	}
	if (sum->not_probed)
		fprintf(f, "; %zu allowed paths not probed (probe_allowed false)", sum->not_probed);
	if (sum->failing)
		fprintf(f, " → %sFAIL%s (%zu failing)\n", color ? RED : "", color ? RESET : "",
		        sum->failing);
	else
		fprintf(f, " → %sPASS%s\n", color ? GREEN : "", color ? RESET : "");
	return ferror(f) ? -EIO : 0;
}

static cJSON *tls_json(const probe_result_t *res)
{
	cJSON *o;

	if (res->tls == VERDICT_TLS_NONE)
		return cJSON_CreateNull();
	o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddBoolToObject(o, "ok", res->tls == VERDICT_TLS_OK);
	if (res->tls == VERDICT_TLS_FAIL)
		cJSON_AddStringToObject(o, "error", res->detail);
	else
		cJSON_AddNullToObject(o, "error");
	if (res->tls_has_expiry)
		cJSON_AddNumberToObject(o, "expires_in_days", res->tls_expires_in_days);
	else
		cJSON_AddNullToObject(o, "expires_in_days");
	return o;
}

static cJSON *row_json(const output_row_t *r)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "dst_role", r->target->dst_role);
	cJSON_AddStringToObject(o, "target", r->target->target);
	if (r->res->address[0])
		cJSON_AddStringToObject(o, "address", r->res->address);
	else
		cJSON_AddNullToObject(o, "address");
	cJSON_AddNumberToObject(o, "port", r->target->port);
	cJSON_AddStringToObject(o, "expected", verdict_expect_name(r->target->expected));
	cJSON_AddStringToObject(o, "state", verdict_state_name(r->res->state));
	cJSON_AddStringToObject(o, "verdict", verdict_name(r->verdict));
	if (r->res->latency_us >= 0)
		cJSON_AddNumberToObject(o, "latency_us", (double)r->res->latency_us);
	else
		cJSON_AddNullToObject(o, "latency_us");
	cJSON_AddBoolToObject(o, "dst_alive", r->dst_alive);
	if (r->res->tls == VERDICT_TLS_FAIL) {
		char buf[PROBE_DETAIL_MAX + 32];

		snprintf(buf, sizeof(buf), "tls handshake failed: %s", r->res->detail);
		cJSON_AddStringToObject(o, "detail", buf);
	} else if (r->res->detail[0]) {
		cJSON_AddStringToObject(o, "detail", r->res->detail);
	} else {
		cJSON_AddNullToObject(o, "detail");
	}
	cJSON_AddItemToObject(o, "tls", tls_json(r->res));
	return o;
}

/* Prints one cJSON item and frees it. Returns 0 or -ENOMEM. */
static int put_json(FILE *f, cJSON *item)
{
	char *text = item ? cJSON_PrintUnformatted(item) : NULL;

	cJSON_Delete(item);
	if (!text)
		return -ENOMEM;
	fputs(text, f);
	free(text);
	return 0;
}

/*
 * One JSON document, written a result at a time: a sweep of thousands of ports
 * never holds the whole tree in memory.
 */
static int write_json(FILE *f, const output_row_t *rows, size_t n, const output_summary_t *sum)
{
	cJSON *summary;
	size_t i;
	int v;

	fputs("{\"role\":", f);
	if (put_json(f, cJSON_CreateString(sum->role)))
		return -ENOMEM;
	fputs(",\"matrix\":", f);
	if (put_json(f, cJSON_CreateString(sum->matrix)))
		return -ENOMEM;
	fputs(",\"results\":[", f);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		if (put_json(f, row_json(&rows[i])))
			return -ENOMEM;
	}
	fputs("],\"summary\":", f);
	summary = cJSON_CreateObject();
	if (!summary)
		return -ENOMEM;
	for (v = 0; v < VERDICT_COUNT_ORDERED; v++)
		cJSON_AddNumberToObject(summary, verdict_name((verdict_t)v),
		                        (double)sum->counts[v]);
	if (put_json(f, summary))
		return -ENOMEM;
	fprintf(f, ",\"not_probed\":%zu,\"passed\":%s}\n", sum->not_probed,
	        sum->failing ? "false" : "true");
	return ferror(f) ? -EIO : 0;
}

/* Writes `s` with XML's five special characters escaped. */
static void xml_put(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&apos;", f);
			break;
		default:
			/* Control characters are not allowed in XML 1.0. */
			if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t')
				fputc(*s, f);
			break;
		}
	}
}

static int write_junit(FILE *f, const output_row_t *rows, size_t n, const output_summary_t *sum)
{
	char name[3 * MATRIX_MAX_NAME], detail[2 * PROBE_DETAIL_MAX];
	size_t i, skipped = 0;

	for (i = 0; i < n; i++) {
		if (!rows[i].failing && rows[i].verdict != VERDICT_OK)
			skipped++;
	}
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n", f);
	fputs("  <testsuite name=\"sgprobe.", f);
	xml_put(f, sum->role);
	fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" time=\"%.3f\">\n", n,
	        sum->failing, skipped, sum->elapsed_s);
	for (i = 0; i < n; i++) {
		const output_row_t *r = &rows[i];

		/* The name says the path, so a pipeline shows each failure by it. */
		snprintf(name, sizeof(name), "%s %s -> %s %s:%u (%s)",
		         verdict_expect_name(r->target->expected), sum->role, r->target->dst_role,
		         r->target->target, r->target->port,
		         r->res->address[0] ? r->res->address : "unresolved");
		format_detail(r, detail, sizeof(detail));
		fputs("    <testcase classname=\"sgprobe.", f);
		xml_put(f, sum->role);
		fputs(".", f);
		xml_put(f, r->target->dst_role);
		fputs("\" name=\"", f);
		xml_put(f, name);
		fprintf(f, "\" time=\"%.6f\">",
		        r->res->latency_us > 0 ? (double)r->res->latency_us / 1e6 : 0.0);
		if (r->failing || r->verdict != VERDICT_OK) {
			fprintf(f, "\n      <%s message=\"%s: %s\" type=\"%s\">",
			        r->failing ? "failure" : "skipped", verdict_name(r->verdict),
			        verdict_state_name(r->res->state), verdict_name(r->verdict));
			xml_put(f, detail);
			fprintf(f, "</%s>\n    ", r->failing ? "failure" : "skipped");
		}
		fputs("</testcase>\n", f);
	}
	fputs("  </testsuite>\n</testsuites>\n", f);
	return ferror(f) ? -EIO : 0;
}

int output_write(FILE *f, output_format_t format, const output_row_t *rows, size_t n,
                 const output_summary_t *sum, bool color)
{
	switch (format) {
	case OUTPUT_JSON:
		return write_json(f, rows, n, sum);
	case OUTPUT_JUNIT:
		return write_junit(f, rows, n, sum);
	default:
		return write_table(f, rows, n, sum, color);
	}
}
