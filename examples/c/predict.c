/* Label CSV rows with an edgeclf C header: reads rows of N_FEATURES floats from stdin (a first line that starts
 * with a name, e.g. "x1,x2", is taken as a header and skipped), prints one class name per line; for a
 * multi-label header, one line per row of "label=0|1 (probability)" for every label, comma-separated, e.g.
 * "tool_wear=1 (0.981234),heat_dissipation=0 (0.000812),...": the 0/1 is the header's own P_predict decision.
 *
 *   gcc -std=c99 -O2 -I<artifact folder> predict.c -lm -o predict
 *   gcc -std=c99 -O2 -I<artifact folder> -DEDGECLF_PREFIX=circles predict.c -lm -o predict   # --c-prefix circles
 *   ./predict < points.csv
 *
 * Exit code 1 and a message on stderr for a row that is not N_FEATURES finite numbers. A model trained with
 * --impute median takes an empty cell (or nan) in the features it fills, as the runtime does; a category column
 * takes its value's index (manifest.json features[].categories), and an index outside its range is refused (the
 * header would give it an all-zero code). The stdio here is the example's: model.h uses none. */
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

/* Whether feature k may be NaN: the header fills it (--impute median), as the exported graph does. */
#if SYM(has_fill)
#define HAS_FILL 1
static int fillable(int k) {
    return SYM(filled)[k];
}
#else
#define HAS_FILL 0
static int fillable(int k) {
    (void)k;
    return 0;
}
#endif

/* Parse "a,b,c" into row; 0 on success, -1 if it is not exactly N_FEATURES finite numbers (an empty cell or nan
 * where the header fills the feature). */
static int parse_row(const char *line, float *row) {
    const char *p = line;
    int k;
    for (k = 0; k < N_FEATURES; k++) {
        char *end;
        errno = 0;
        while (*p == ' ' || *p == '\t') p++;
        if (fillable(k) && (*p == ',' || *p == '\0' || *p == '\n' || *p == '\r')) {
            row[k] = NAN; /* an empty cell */
        } else {
            row[k] = strtof(p, &end);
            if (end == p || errno == ERANGE || (!isfinite(row[k]) && !(fillable(k) && isnan(row[k])))) return -1;
            p = end;
        }
        while (*p == ' ' || *p == '\t') p++;
        if (k < N_FEATURES - 1) {
            if (*p != ',') return -1;
            p++;
        }
    }
    return (*p == '\0' || *p == '\n' || *p == '\r') ? 0 : -1;
}

/* -1 and a message when a category feature's value is not an index of its vocabulary, else 0. */
static int check_categories(const float *row, long line) {
#if SYM(has_categories)
    int k;
    for (k = 0; k < N_FEATURES; k++) {
        int n = SYM(n_categories)[k];
        if (n > 0 && !(row[k] >= 0.0f && row[k] <= (float)(n - 1) && row[k] == floorf(row[k]))) {
            fprintf(stderr, "line %ld: column %d (%s): %g is not a category index: expected an integer in 0..%d "
                    "(its vocabulary in manifest.json)\n", line, k + 1, SYM(features)[k], (double)row[k], n - 1);
            return -1;
        }
    }
#else
    (void)row;
    (void)line;
#endif
    return 0;
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
            fprintf(stderr, "line %ld: expected %d comma-separated finite numbers%s\n", n, N_FEATURES,
                    HAS_FILL ? " (empty or nan only where the model fills a feature)" : "");
            return 1;
        }
        if (check_categories(row, n) != 0) return 1;
        print_row(row);
    }
    return ferror(stdin) ? 1 : 0;
}
