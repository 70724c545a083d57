/* Datasets for `moecap bench`: GSM8K-format and multiple-choice JSON-lines files (the
 * bundled samples in data/datasets/ or the user's own), and synthetic prompts of a given
 * input/output length. */
#ifndef MOECAP_BENCH_DATASET_H
#define MOECAP_BENCH_DATASET_H
#include <stddef.h>

enum mc_item_kind { MC_ITEM_PLAIN = 0, MC_ITEM_GSM8K, MC_ITEM_CHOICE };

struct mc_item {
    char *prompt;           /* text sent as the prompt (or the user message with --chat) */
    char *expected;         /* reference answer (number or letter) or NULL */
    int kind;               /* enum mc_item_kind: how the answer is scored */
    int nchoices;           /* multiple choice: number of options */
    int max_tokens;         /* per-item output length (synthetic), 0 = use --max-tokens */
    int input_len;          /* synthetic: requested input length, else 0 */
    int ignore_eos;         /* send "ignore_eos": true (synthetic, or the item says so) */
};

struct mc_dataset {
    char name[64];          /* "gsm8k", "mc", "synthetic", or the file's base name */
    char source[4200];      /* file path or the synthetic spec */
    struct mc_item *items;
    size_t n;
    int synthetic;
};

/* Loads NAME ("gsm8k", "mc"/"multiple-choice", "synthetic:in=I,out=O[,unit=bytes|words]")
 * or a JSON-lines FILE. For synthetic sets `n` prompts are generated from `seed`; for
 * files `n` is ignored here (the caller cycles). On error writes a message into err and
 * returns -1. */
int mc_dataset_load(struct mc_dataset *ds, const char *spec, size_t n, unsigned long long seed,
                    char *err, size_t errsz);
void mc_dataset_free(struct mc_dataset *ds);

/* Where the bundled datasets live: the first existing directory of the bundled-data search
 * (trace/data_dir.h: $MOECAP_DATA_DIR, $MOECAP_ROOT/data/datasets, build/bin/../../data/datasets,
 * ../share/moecap/datasets from the binary, ./data/datasets) into out; 0, or -1 when none. */
int mc_dataset_dir(char *out, size_t outsz);

/* Builds an item from one parsed JSON-lines object (exposed for tests). Accepted shapes:
 *   {"question": Q, "answer": "... #### N"}                 GSM8K
 *   {"question": Q, "choices": [..], "answer": "B"}         multiple choice
 *   {"prompt": P, "expected": X, "type": "gsm8k"|"choice"|"plain", "ignore_eos": bool}
 * Returns 0 or -1 (err filled). */
struct cJSON;
int mc_item_from_json(const struct cJSON *obj, struct mc_item *it, char *err, size_t errsz);
#endif
