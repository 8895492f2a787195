/*
 * dashboard: the admin listener's GET /, one self-contained HTML file
 * (collector/dashboard.html, no external scripts or fonts) embedded in the
 * binary at build time.
 */
#ifndef SGPROBE_DASHBOARD_H
#define SGPROBE_DASHBOARD_H

#include <stddef.h>

/** The page, NUL-terminated; dashboard_html_len bytes without the NUL. */
extern const char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
