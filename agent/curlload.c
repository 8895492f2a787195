/*
 * curlload: libcurl, loaded when the agent first needs it (see curlload.h).
 *
 * Every function below has the exact prototype of libcurl's header (the compiler
 * checks it: curl.h is included), looks the real function up once, and calls it.
 * The variadic setopt and getinfo pass their one argument on with the type
 * libcurl itself reads for that option, from the option's number range.
 */
#define CURL_DISABLE_TYPECHECK /* this file defines the functions those macros wrap */

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "curlload.h"

/* Every libcurl function the agent calls: the table and the lookups follow it. */
#define CURLLOAD_FUNCTIONS(X)                                                                      \
	X(curl_global_init)                                                                        \
	X(curl_global_cleanup)                                                                     \
	X(curl_easy_init)                                                                          \
	X(curl_easy_cleanup)                                                                       \
	X(curl_easy_setopt)                                                                        \
	X(curl_easy_getinfo)                                                                       \
	X(curl_easy_perform)                                                                       \
	X(curl_easy_strerror)                                                                      \
	X(curl_easy_escape)                                                                        \
	X(curl_free)                                                                               \
	X(curl_slist_append)                                                                       \
	X(curl_slist_free_all)                                                                     \
	X(curl_url)                                                                                \
	X(curl_url_cleanup)                                                                        \
	X(curl_url_get)                                                                            \
	X(curl_url_set)                                                                            \
	X(curl_multi_init)                                                                         \
	X(curl_multi_cleanup)                                                                      \
	X(curl_multi_setopt)                                                                       \
	X(curl_multi_add_handle)                                                                   \
	X(curl_multi_remove_handle)                                                                \
	X(curl_multi_socket_action)                                                                \
	X(curl_multi_assign)                                                                       \
	X(curl_multi_info_read)

typedef struct {
#define MEMBER(name) __typeof__(name) *name;
	CURLLOAD_FUNCTIONS(MEMBER)
#undef MEMBER
} curl_table_t;

/*
 * The process's one libcurl (curlload.h says why this is not in a context
 * struct): the handle, its functions, and why the last attempt to load failed.
 */
static void *lib;
static curl_table_t fn;
static char load_error[256];

int curlload_open(const char *soname, char *err, size_t errlen)
{
	curl_table_t t;
	void *h;

	if (lib)
		return 0;
	dlerror();
	h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *why = dlerror();

		snprintf(load_error, sizeof(load_error), "cannot load libcurl (%s): %s", soname,
		         why ? why : "unknown error");
		goto fail;
	}
#define LOOKUP(name)                                                                               \
	*(void **)&t.name = dlsym(h, #name);                                                       \
	if (!t.name) {                                                                             \
		snprintf(load_error, sizeof(load_error),                                           \
		         "%s has no %s: is it libcurl 7.62 or later?", soname, #name);             \
		dlclose(h);                                                                        \
		goto fail;                                                                         \
	}
	CURLLOAD_FUNCTIONS(LOOKUP)
#undef LOOKUP
	fn = t;
	lib = h;
	load_error[0] = '\0';
	return 0;
fail:
	if (errlen > 0)
		snprintf(err, errlen, "%s", load_error);
	return -ENOENT;
}

/* Whether libcurl is there, loading it on first use. */
static int loaded(void)
{
	return lib || !curlload_open(CURLLOAD_SONAME, NULL, 0);
}

CURLcode curl_global_init(long flags)
{
	return loaded() ? fn.curl_global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
	if (lib)
		fn.curl_global_cleanup();
}

CURL *curl_easy_init(void)
{
	return loaded() ? fn.curl_easy_init() : NULL;
}

void curl_easy_cleanup(CURL *curl)
{
	if (lib)
		fn.curl_easy_cleanup(curl);
}

/*
 * Calls `f(handle, option, next argument of ap)`, reading that argument as the
 * type libcurl reads for the option's range (curl.h, CURLOPTTYPE_*). The multi
 * options (CURLMOPT_*) are numbered the same way.
 */
#define FORWARD_OPTION(result, f, handle, option, ap)                                              \
	do {                                                                                       \
		if ((option) < CURLOPTTYPE_OBJECTPOINT)                                            \
			result = f(handle, option, va_arg(ap, long));                              \
		else if ((option) < CURLOPTTYPE_FUNCTIONPOINT)                                     \
			result = f(handle, option, va_arg(ap, void *));                            \
		else if ((option) < CURLOPTTYPE_OFF_T)                                             \
			result = f(handle, option, va_arg(ap, void (*)(void)));                    \
		else if ((option) < CURLOPTTYPE_BLOB)                                              \
			result = f(handle, option, va_arg(ap, curl_off_t));                        \
		else                                                                               \
			result = f(handle, option, va_arg(ap, void *));                            \
	} while (0)

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
	CURLcode result;
	va_list ap;

	if (!loaded())
		return CURLE_FAILED_INIT;
	va_start(ap, option);
	FORWARD_OPTION(result, fn.curl_easy_setopt, curl, option, ap);
	va_end(ap);
	return result;
}

CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
	CURLcode result;
	va_list ap;

	if (!loaded())
		return CURLE_FAILED_INIT;
	/* Every CURLINFO_* takes a pointer to where the answer goes. */
	va_start(ap, info);
	result = fn.curl_easy_getinfo(curl, info, va_arg(ap, void *));
	va_end(ap);
	return result;
}

CURLcode curl_easy_perform(CURL *curl)
{
	return loaded() ? fn.curl_easy_perform(curl) : CURLE_FAILED_INIT;
}

const char *curl_easy_strerror(CURLcode code)
{
	if (!loaded())
		return load_error;
	return fn.curl_easy_strerror(code);
}

char *curl_easy_escape(CURL *handle, const char *string, int length)
{
	return loaded() ? fn.curl_easy_escape(handle, string, length) : NULL;
}

void curl_free(void *p)
{
	/* Nothing libcurl allocated can exist before it was loaded. */
	if (lib)
		fn.curl_free(p);
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
	return loaded() ? fn.curl_slist_append(list, data) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
	if (lib)
		fn.curl_slist_free_all(list);
}

CURLU *curl_url(void)
{
	return loaded() ? fn.curl_url() : NULL;
}

void curl_url_cleanup(CURLU *handle)
{
	if (lib)
		fn.curl_url_cleanup(handle);
}

CURLUcode curl_url_get(CURLU *handle, CURLUPart what, char **part, unsigned int flags)
{
	return loaded() ? fn.curl_url_get(handle, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_set(CURLU *handle, CURLUPart what, const char *part, unsigned int flags)
{
	return loaded() ? fn.curl_url_set(handle, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLM *curl_multi_init(void)
{
	return loaded() ? fn.curl_multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *multi)
{
	return lib ? fn.curl_multi_cleanup(multi) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_setopt(CURLM *multi, CURLMoption option, ...)
{
	CURLMcode result;
	va_list ap;

	if (!loaded())
		return CURLM_BAD_HANDLE;
	va_start(ap, option);
	FORWARD_OPTION(result, fn.curl_multi_setopt, multi, option, ap);
	va_end(ap);
	return result;
}

CURLMcode curl_multi_add_handle(CURLM *multi, CURL *curl)
{
	return lib ? fn.curl_multi_add_handle(multi, curl) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *curl)
{
	return lib ? fn.curl_multi_remove_handle(multi, curl) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_socket_action(CURLM *multi, curl_socket_t s, int ev_bitmask,
                                   int *running_handles)
{
	return lib ? fn.curl_multi_socket_action(multi, s, ev_bitmask, running_handles)
	           : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_assign(CURLM *multi, curl_socket_t sockfd, void *sockp)
{
	return lib ? fn.curl_multi_assign(multi, sockfd, sockp) : CURLM_BAD_HANDLE;
}

CURLMsg *curl_multi_info_read(CURLM *multi, int *msgs_in_queue)
{
	if (!lib) {
		*msgs_in_queue = 0;
		return NULL;
	}
	return fn.curl_multi_info_read(multi, msgs_in_queue);
}
