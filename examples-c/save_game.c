/* Save and load a conversation with an NPC, the way a game saves its world: the host keeps
 * the transcript (the messages_json array, saved as JSON), and a snapshot of the model's KV
 * cache saves evaluating it again after loading.
 *
 *   usage: save_game MODEL.gguf SAVE_DIR           a new game: talk to the smith, save, quit
 *          save_game MODEL.gguf SAVE_DIR --load    load the save and say one more thing
 *
 * SAVE_DIR gets transcript.json and npc.snapshot. With --load, the next turn's prompt comes
 * almost entirely from the snapshot: the program prints how much, and exits with 3 if less
 * than 95% of it did. A snapshot that does not fit (another model, a damaged file) is refused
 * with a message and the game goes on from the transcript alone, only slower. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rigllama.h"

/* The NPC: a long character sheet, as games send, so the saved cache is worth having. */
static const char *npc_sheet =
    "You are Brakka Ironhand, the blacksmith of Emberfall, a mining village high in the Ashen "
    "Mountains. You are fifty-three years old, broad-shouldered, with a burn scar across your "
    "left forearm from the day the old forge exploded. You speak plainly and briefly, in two or "
    "three sentences at most, and you never break character or mention being an AI.\n"
    "What you know: Emberfall sits above the Deepdelve mine, where the miners dig iron, silver "
    "and, rarely, starsteel, a blue-black metal that holds an edge forever but can only be "
    "worked at the heat of a dragon-coal fire. You have one lump of dragon coal left, hidden "
    "under the anvil, and you guard it jealously. The mine has been quiet for a month since the "
    "lower tunnels flooded; the miners blame the Kobold clans, the priest blames the miners' "
    "greed, and the mayor, Oswin Tull, blames everyone but himself. Your daughter Hilde runs "
    "the village inn, the Crooked Pick, and worries that you work too hard. Your apprentice, a "
    "nervous boy called Pim, sweeps the forge and keeps dropping tongs.\n"
    "What you sell: horseshoes (2 silver), a plain dagger (8 silver), a miner's pick (12 "
    "silver), a longsword (40 silver), a shield of oak and iron (25 silver). You repair armour "
    "for 5 silver a piece. You will forge a starsteel blade only for someone who brings you "
    "starsteel ore from the flooded lower tunnels and proves they are no friend of Mayor Tull.\n"
    "How you treat strangers: gruff at first, warmer to anyone who is polite, pays fairly or "
    "asks about Hilde. You dislike haggling, flattery and anyone who calls your forge a shop. "
    "If someone asks about the flooded tunnels, you tell them the water rose the night the "
    "Kobold drums stopped, and that you do not believe the Kobolds did it. If asked about the "
    "dragon coal, you deny having any unless the player has already brought starsteel ore.\n"
    "The village: the Crooked Pick serves mutton stew and dark ale; the chapel of the Forge "
    "Mother stands at the top of the hill, and its priest, Brother Aldous, rings the bell at "
    "every shift change in the mine. The road down the mountain to the market town of Greyford "
    "takes two days by mule and is watched by bandits in the autumn. Old Marta the herbalist "
    "lives by the waterfall and sells salves for burns, which you buy more of than you admit. "
    "Captain Rennick and six guards keep the peace; Rennick owes you for a sword he never paid "
    "for, and you remind him of it whenever he visits the forge.\n"
    "Your past: you were a soldier in the Border Wars for twelve years and forged the blades of "
    "your company in the field. You left after the siege of Harrowgate, where your friend Jorun "
    "died holding the gate, and you still keep his broken axe above the forge. You do not talk "
    "about the war unless someone asks about the axe.";

/* What the player says in a new game, and after loading. */
static const char *new_game_lines[] = {
    "Good morning, smith. I'm new in Emberfall. What do you make here?",
    "How much for a longsword? I'm heading down to the flooded tunnels.",
    "What happened down there? Did the Kobolds flood the mine?",
};
static const char *after_load_line = "I'm back with starsteel ore. Will you forge me a blade?";

/* ---- a growing string ---------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void append(buffer *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) {
            perror("realloc");
            exit(1);
        }
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void append_json_string(buffer *b, const char *s) {
    append(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            append(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            append(b, esc, 6);
        } else {
            append(b, (const char *)&c, 1);
        }
    }
    append(b, "\"", 1);
}

/* ---- the transcript: the messages_json array without its closing ']' ----------------- */

static void add_turn(buffer *transcript, const char *role, const char *content) {
    if (transcript->len > 1)
        append(transcript, ",", 1);
    append(transcript, "{\"role\":\"", 9);
    append(transcript, role, strlen(role));
    append(transcript, "\",\"content\":", 12);
    append_json_string(transcript, content);
    append(transcript, "}", 1);
}

/* messages_json: the transcript plus the player's next line (malloc'd). */
static char *with_player_line(const buffer *transcript, const char *line) {
    buffer messages = {0};
    append(&messages, transcript->data, transcript->len);
    add_turn(&messages, "user", line);
    append(&messages, "]", 1);
    return messages.data;
}

/* ---- files --------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buffer b = {0};
    char chunk[65536];
    size_t n;
    append(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        append(&b, chunk, n);
    fclose(f);
    *out_len = b.len;
    return b.data;
}

/* Writes to PATH.tmp, then renames it over PATH, so a crash mid-save never leaves half a
 * file where the last good save was. */
static int write_file(const char *path, const void *data, size_t len) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0;
}

/* ---- the game ------------------------------------------------------------------------ */

/* One exchange: the player's line, Brakka's reply; both join the transcript. */
static int play_turn(rigllama_engine *engine, buffer *transcript, const char *line, rigllama_usage *usage) {
    char *messages = with_player_line(transcript, line);
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages;
    request.temperature = 0.0f; /* greedy: the same save plays the same way */
    request.max_tokens = 40;
    rigllama_usage_init(usage, sizeof *usage);
    char *reply = NULL;
    rigllama_status status = rigllama_engine_complete(engine, &request, &reply, usage);
    free(messages);
    if (status != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "the NPC did not answer: %s\n", rigllama_last_error());
        return 0;
    }
    printf("Player: %s\nBrakka: %s\n", line, reply);
    printf("        [%u prompt tokens, %u from the cache, evaluated in %.0f ms]\n", usage->prompt_tokens,
           usage->cached_prompt_tokens, usage->prompt_ms);
    add_turn(transcript, "user", line);
    add_turn(transcript, "assistant", reply);
    rigllama_string_free(reply);
    return 1;
}

static int save(rigllama_engine *engine, const buffer *transcript, const char *transcript_path,
                const char *snapshot_path) {
    buffer json = {0};
    append(&json, transcript->data, transcript->len);
    append(&json, "]\n", 2);
    int ok = write_file(transcript_path, json.data, json.len);
    free(json.data);
    if (!ok) {
        perror(transcript_path);
        return 0;
    }
    /* The request names the conversation: its longest cached prefix is saved. The player's
     * next line is not known yet, so an empty one stands in for it; everything before it,
     * Brakka's last reply included, is in the cache. */
    char *messages = with_player_line(transcript, "");
    rigllama_request request;
    rigllama_request_init(&request, sizeof request);
    request.messages_json = messages;
    uint8_t *data = NULL;
    size_t len = 0;
    rigllama_status status = rigllama_engine_save_snapshot(engine, &request, &data, &len);
    free(messages);
    if (status != RIGLLAMA_STATUS_OK) {
        /* Not fatal: the transcript alone is a complete save, just slower to load. */
        fprintf(stderr, "no snapshot saved: %s\n", rigllama_last_error());
        return 1;
    }
    ok = write_file(snapshot_path, data, len);
    rigllama_bytes_free(data);
    if (!ok) {
        perror(snapshot_path);
        return 0;
    }
    printf("saved %s and %s (%.1f MB)\n", transcript_path, snapshot_path, len / 1e6);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3 || (argc > 3 && strcmp(argv[3], "--load") != 0)) {
        fprintf(stderr, "usage: %s MODEL.gguf SAVE_DIR [--load]\n", argv[0]);
        return 2;
    }
    int load = argc > 3;
    char transcript_path[4096], snapshot_path[4096];
    snprintf(transcript_path, sizeof transcript_path, "%s/transcript.json", argv[2]);
    snprintf(snapshot_path, sizeof snapshot_path, "%s/npc.snapshot", argv[2]);

    rigllama_engine_options options;
    rigllama_engine_options_init(&options, sizeof options);
    options.model_path = argv[1];
    rigllama_engine *engine = NULL;
    if (rigllama_engine_create(&options, &engine) != RIGLLAMA_STATUS_OK) {
        fprintf(stderr, "create failed: %s\n", rigllama_last_error());
        return 1;
    }

    int ok = 1;
    buffer transcript = {0};
    rigllama_usage usage;
    if (!load) {
        append(&transcript, "[", 1);
        add_turn(&transcript, "system", npc_sheet);
        for (size_t i = 0; ok && i < sizeof new_game_lines / sizeof new_game_lines[0]; i++)
            ok = play_turn(engine, &transcript, new_game_lines[i], &usage);
        ok = ok && save(engine, &transcript, transcript_path, snapshot_path);
        if (ok)
            printf("quit; run again with --load to continue\n");
    } else {
        /* The transcript is the messages_json array: drop its closing ']' to add turns. */
        size_t len = 0;
        char *json = read_file(transcript_path, &len);
        while (json && len > 0 && strchr(" \t\r\n", json[len - 1]))
            json[--len] = '\0';
        if (!json || len < 2 || json[0] != '[' || json[len - 1] != ']') {
            fprintf(stderr, "%s: no saved game there\n", transcript_path);
            free(json);
            rigllama_engine_destroy(engine);
            return 1;
        }
        append(&transcript, json, len - 1);
        free(json);

        char *snapshot = read_file(snapshot_path, &len);
        if (!snapshot) {
            fprintf(stderr, "%s: no snapshot; the transcript is evaluated again\n", snapshot_path);
        } else if (rigllama_engine_load_snapshot(engine, (const uint8_t *)snapshot, len) != RIGLLAMA_STATUS_OK) {
            fprintf(stderr, "snapshot not used: %s\n", rigllama_last_error());
        } else {
            printf("loaded %s and %s (%.1f MB)\n", transcript_path, snapshot_path, len / 1e6);
        }
        free(snapshot);

        ok = play_turn(engine, &transcript, after_load_line, &usage);
        if (ok) {
            double ratio = usage.prompt_tokens ? (double)usage.cached_prompt_tokens / usage.prompt_tokens : 0;
            printf("after loading: %u of %u prompt tokens came from the snapshot (%.1f%%); the prompt took "
                   "%.0f ms\n",
                   usage.cached_prompt_tokens, usage.prompt_tokens, 100.0 * ratio, usage.prompt_ms);
            if (ratio < 0.95) {
                fprintf(stderr, "the save did not restore the cache (%.1f%% < 95%%)\n", 100.0 * ratio);
                ok = 0;
                free(transcript.data);
                rigllama_engine_destroy(engine);
                return 3;
            }
            /* Keep playing, keep saving. */
            ok = save(engine, &transcript, transcript_path, snapshot_path);
        }
    }
    free(transcript.data);
    rigllama_engine_destroy(engine);
    return ok ? 0 : 1;
}
