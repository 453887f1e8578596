/* Label CSV rows with an edgeclf C header: reads rows of N_FEATURES floats from stdin (a first line that starts
 * with a name, e.g. "x1,x2", is taken as a header and skipped), prints one class name per line; for a
 * multi-label header, one line per row of "label=0|1 (probability)" for every label, comma-separated, e.g.
 * "tool_wear=1 (0.981234),heat_dissipation=0 (0.000812),...": the 0/1 is the header's own P_predict decision.
 *
 *   gcc -std=c99 -O2 -I<artifact folder> predict.c -lm -o predict
 *   gcc -std=c99 -O2 -I<artifact folder> -DEDGECLF_PREFIX=circles predict.c -lm -o predict   # --c-prefix circles
 *   ./predict < points.csv
 *
 * Exit code 1 and a message on stderr for a row that is not N_FEATURES finite numbers. The stdio here is the
 * example's: model.h uses none. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#ifndef EDGECLF_PREFIX
#define EDGECLF_PREFIX edgeclf /* the header's --c-prefix */
#endif
#define PASTE_(prefix, name) prefix##_##name
#define PASTE(prefix, name) PASTE_(prefix, name)
#define SYM(name) PASTE(EDGECLF_PREFIX, name) /* SYM(predict) is edgeclf_predict */
/* the header's P_N_FEATURES, whatever P is: the length of its P_features array */
#define N_FEATURES ((int)(sizeof SYM(features) / sizeof SYM(features)[0]))
#define LINE_MAX_CHARS 65536

/* the header says its kind by a macro named after its prefix (`#if SYM(multilabel)`: 0 where undefined) */
#if SYM(multilabel)
#define N_LABELS ((int)(sizeof SYM(labels) / sizeof SYM(labels)[0]))

/* every label's 0/1 decision and probability on one line */
static void print_row(const float *row) {
    float proba[N_LABELS];
    int yes[N_LABELS];
    int k;
    SYM(predict_proba)(row, proba);
    SYM(predict)(row, yes);
    for (k = 0; k < N_LABELS; k++) printf("%s%s=%d (%.6f)", k ? "," : "", SYM(labels)[k], yes[k], (double)proba[k]);
    putchar('\n');
}
#else
static void print_row(const float *row) {
    puts(SYM(classes)[SYM(predict)(row)]);
}
#endif

/* Parse "a,b,c" into row; 0 on success, -1 if it is not exactly N_FEATURES finite numbers. */
static int parse_row(const char *line, float *row) {
    const char *p = line;
    int k;
    for (k = 0; k < N_FEATURES; k++) {
        char *end;
        errno = 0;
        row[k] = strtof(p, &end);
        if (end == p || errno == ERANGE || !isfinite(row[k])) return -1;
        p = end;
        while (*p == ' ' || *p == '\t') p++;
        if (k < N_FEATURES - 1) {
            if (*p != ',') return -1;
            p++;
        }
    }
    return (*p == '\0' || *p == '\n' || *p == '\r') ? 0 : -1;
}

/* A header starts with a name, not a number: "1,2,3" on line 1 is a bad row, not a header. */
static int header(const char *line) {
    char *end;
    (void)strtof(line, &end);
    return end == line;
}

static int blank(const char *line) {
    return line[strspn(line, " \t\r\n")] == '\0';
}

int main(void) {
    static char line[LINE_MAX_CHARS];
    float row[N_FEATURES];
    long n = 0;
    while (fgets(line, sizeof line, stdin) != NULL) {
        n++;
        if (strchr(line, '\n') == NULL && !feof(stdin)) {
            fprintf(stderr, "line %ld: longer than %d characters\n", n, LINE_MAX_CHARS - 2);
            return 1;
        }
        if (blank(line)) continue;
        if (parse_row(line, row) != 0) {
            if (n == 1 && header(line)) continue;
            fprintf(stderr, "line %ld: expected %d comma-separated finite numbers\n", n, N_FEATURES);
            return 1;
        }
        print_row(row);
    }
    return ferror(stdin) ? 1 : 0;
}
