#!/bin/sh
# Embeds a text file in C: `sh scripts/embed.sh NAME FILE > out.c` defines
# `const char NAME[]` (the bytes, NUL-terminated) and `const size_t NAME_len`.
set -eu
name=$1
file=$2
printf '/* Generated from %s by scripts/embed.sh: do not edit. */\n#include <stddef.h>\n' "$file"
printf 'const char %s[] =\n' "$name"
od -An -v -tx1 "$file" | sed 's/ *$//; s/^ */"\\x/; s/ /\\x/g; s/$/"/'
printf ';\nconst size_t %s_len = sizeof(%s) - 1;\n' "$name" "$name"
