/*
 * mod_seatgate: license seat limits for FreeSWITCH logins, through libseatgate.
 *
 *   API          seatgate report [text|json]
 *                seatgate acquire <user> <profiles> [<extension> [<session> [<tenant>]]]
 *                seatgate release <seat> | touch <seat> | usage <type> | reload [<path>]
 *   application  seatgate_acquire <user> <profiles> [<over-limit extension>|!<cause> [<dialplan> [<context>]]]
 *                seatgate_release [<seat>]
 *   events       CUSTOM seatgate::event, one per libseatgate event (acquired, released,
 *                denied, threshold, reloaded, ...): Seatgate-Event, License-Type, User, Seat,
 *                Used, Limit, Reason, Detail; which ones: <param name="events"> (all,
 *                alerts, or names joined by commas; see seatgate.conf.xml)
 *
 * seatgate_acquire is modelled on mod_dptools' `limit` app: on a refusal it sets
 * seatgate_result and seatgate_refused_{type,reason,used,limit,requires,profile,detail}
 * and transfers to the over-limit extension (default "seatgate_over_limit" in the
 * same dialplan and context), or hangs up with the cause given after '!'. On success
 * it sets seatgate_seat. Unlike `limit`, the seat is a login, not a call: it outlives
 * the call unless the channel variable seatgate_release_on_hangup is true.
 *
 * The config path: <param name="config"> in seatgate.conf.xml, else the global
 * variable seatgate_config (vars.xml), else $${conf_dir}/seatgate.toml. The module
 * calls license_init at load and license_shutdown at unload; `seatgate reload`
 * re-reads seatgate.conf.xml for the path and calls license_reload, keeping every
 * held seat (`reload mod_seatgate` would forget them all).
 *
 * Everything that does not need FreeSWITCH is in seatgate_fs.c (tested on its own).
 */
#include <switch.h>

#include "seatgate.h"
#include "seatgate_fs.h"

SWITCH_MODULE_LOAD_FUNCTION(mod_seatgate_load);
SWITCH_MODULE_SHUTDOWN_FUNCTION(mod_seatgate_shutdown);
SWITCH_MODULE_DEFINITION(mod_seatgate, mod_seatgate_load, mod_seatgate_shutdown, NULL);

#define SEATGATE_EVENT "seatgate::event"
#define SEATGATE_CONF "seatgate.conf"
/* Seats the channel gives back when it hangs up (seatgate_release_on_hangup). */
#define HANGUP_SEATS_VAR "seatgate_hangup_seats"

static struct {
    switch_mutex_t *mutex; /* guards config_path */
    char config_path[LICENSE_MAX_PATH_LEN + 1];
} globals;

/* This thread's license_last_error, for a log line. */
static const char *last_error(char *buf, size_t len) {
    buf[0] = '\0';
    license_last_error(buf, len, NULL);
    return buf;
}

/* The config path, from seatgate.conf.xml, the global variable, or the default. */
/* Reads seatgate.conf.xml: the config path into `out`, and the event mask (param
 * "events", default all) into `*events`. Returns 0, or -1 with `why` set when
 * "events" names no event (`*events` is then LICENSE_EVENTS_ALL). */
static int find_config(char *out, size_t len, uint32_t *events, char *why, size_t why_len) {
    switch_xml_t cfg = NULL, xml, settings, param;
    char *global = NULL;
    const char *path = NULL;
    const char *mask = NULL;
    int rc = 0;

    if ((xml = switch_xml_open_cfg(SEATGATE_CONF, &cfg, NULL))) {
        if ((settings = switch_xml_child(cfg, "settings"))) {
            for (param = switch_xml_child(settings, "param"); param; param = param->next) {
                if (!strcasecmp(switch_xml_attr_soft(param, "name"), "config")) {
                    path = switch_xml_attr_soft(param, "value");
                } else if (!strcasecmp(switch_xml_attr_soft(param, "name"), "events")) {
                    mask = switch_xml_attr_soft(param, "value");
                }
            }
        }
    }
    *events = LICENSE_EVENTS_ALL;
    if (!zstr(mask) && license_event_mask_parse(mask, events) != LICENSE_OK) {
        char detail[512];
        switch_snprintf(why, why_len, "%s: param events: %s", SEATGATE_CONF, last_error(detail, sizeof detail));
        *events = LICENSE_EVENTS_ALL;
        rc = -1;
    }
    if (zstr(path) && (global = switch_core_get_variable_dup("seatgate_config"))) {
        path = global;
    }
    if (zstr(path)) {
        switch_snprintf(out, len, "%s%sseatgate.toml", SWITCH_GLOBAL_dirs.conf_dir, SWITCH_PATH_SEPARATOR);
    } else {
        switch_copy_string(out, path, len);
    }
    switch_safe_free(global);
    if (xml) {
        switch_xml_free(xml);
    }
    return rc;
}

static const char *event_kind_name(uint32_t kind) {
    static const char *const names[] = {
        "unknown", "acquired", "released", "denied", "threshold_up", "threshold_down", "reloaded",
        "warning", "expired", "emergency_started", "emergency_ended", "limit_changed",
    };
    return kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

/* libseatgate's events as FreeSWITCH CUSTOM events (ESL, event_socket, logs). It runs
 * on the thread that caused the event, the reaper thread included; firing an event is
 * safe from any thread. seatgate holds no lock while calling it. */
static void on_seatgate_event(void *user_data, const struct license_event *ev) {
    switch_event_t *event = NULL;
    (void)user_data;
    if (switch_event_create_subclass(&event, SWITCH_EVENT_CUSTOM, SEATGATE_EVENT) != SWITCH_STATUS_SUCCESS) {
        return;
    }
    switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Seatgate-Event", event_kind_name(ev->kind));
    if (ev->license_type) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "License-Type", ev->license_type);
    }
    if (ev->user) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "User", ev->user);
    }
    if (ev->tenant) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Tenant", ev->tenant);
    }
    if (ev->seat) {
        switch_event_add_header(event, SWITCH_STACK_BOTTOM, "Seat", "%llu", (unsigned long long)ev->seat);
    }
    switch_event_add_header(event, SWITCH_STACK_BOTTOM, "Used", "%u", (unsigned)ev->used);
    switch_event_add_header(event, SWITCH_STACK_BOTTOM, "Limit", "%u", (unsigned)ev->limit);
    if (ev->kind == LICENSE_EVENT_DENIED) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Reason", sg_reason_name(ev->reason));
    } else if (ev->kind == LICENSE_EVENT_RELEASED) {
        switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Reason", sg_release_reason_name(ev->reason));
    }
    switch_event_add_header_string(event, SWITCH_STACK_BOTTOM, "Detail", ev->detail);
    switch_event_fire(&event);
}

/* ---- the API ---- */

static void stream_emit(void *ctx, const char *text) {
    switch_stream_handle_t *stream = ctx;
    stream->write_function(stream, "%s", text);
}

SWITCH_STANDARD_API(seatgate_api) {
    char path[sizeof globals.config_path];
    char why[512];
    uint32_t events = 0;
    int plain_reload = 0;
    (void)session;
    if (zstr(cmd)) {
        stream->write_function(stream, "-USAGE: seatgate %s\n", SG_API_SYNTAX);
        return SWITCH_STATUS_SUCCESS;
    }
    if (!strncmp(cmd, "reload", 6) && (cmd[6] == '\0' || cmd[6] == ' ')) {
        /* A plain reload follows seatgate.conf.xml, which may name a new file and
         * another event mask. */
        if (find_config(path, sizeof path, &events, why, sizeof why) != 0) {
            stream->write_function(stream, "-ERR %s; nothing changed\n", why);
            return SWITCH_STATUS_SUCCESS;
        }
        plain_reload = 1;
        switch_mutex_lock(globals.mutex);
        switch_copy_string(globals.config_path, path, sizeof globals.config_path);
        switch_mutex_unlock(globals.mutex);
    } else {
        switch_mutex_lock(globals.mutex);
        switch_copy_string(path, globals.config_path, sizeof path);
        switch_mutex_unlock(globals.mutex);
    }
    /* The new event mask goes with the new config: both or neither. */
    if (sg_api(cmd, path, stream_emit, stream) == LICENSE_OK && plain_reload) {
        license_set_event_mask(events);
    }
    return SWITCH_STATUS_SUCCESS;
}

/* ---- the dialplan applications ---- */

static void channel_set_var(void *ctx, const char *name, const char *value) {
    switch_channel_set_variable((switch_channel_t *)ctx, name, value);
}

/* Gives back the seats listed in seatgate_hangup_seats when the channel hangs up. */
static switch_status_t release_on_hangup(switch_core_session_t *session) {
    switch_channel_t *channel = switch_core_session_get_channel(session);
    const char *list;
    char *copy, *argv[32] = {0};
    char why[512];
    unsigned argc, i;

    if (switch_channel_get_state(channel) < CS_HANGUP) {
        return SWITCH_STATUS_SUCCESS;
    }
    switch_core_event_hook_remove_state_change(session, release_on_hangup);
    if (zstr(list = switch_channel_get_variable(channel, HANGUP_SEATS_VAR))) {
        return SWITCH_STATUS_SUCCESS;
    }
    copy = switch_core_session_strdup(session, list);
    argc = switch_separate_string(copy, ',', argv, sizeof argv / sizeof argv[0]);
    for (i = 0; i < argc; i++) {
        license_seat seat;
        int32_t rc;
        if (sg_parse_seat(argv[i], &seat) != 0) {
            continue;
        }
        /* UNKNOWN_SEAT is normal here: seatgate_release or the API released it already. */
        if ((rc = license_release(seat)) != LICENSE_OK && rc != LICENSE_ERR_UNKNOWN_SEAT) {
            switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_WARNING,
                              "seatgate: releasing seat %s at hangup: %s: %s\n", argv[i], sg_status_name(rc),
                              last_error(why, sizeof why));
        }
    }
    switch_channel_set_variable(channel, HANGUP_SEATS_VAR, NULL);
    return SWITCH_STATUS_SUCCESS;
}

#define ACQUIRE_DESC                                                                                  \
    "Takes one seat of every license type the profiles imply, all or nothing. On a refusal it sets " \
    "seatgate_result and seatgate_refused_* and transfers to the over-limit extension "              \
    "(default " SG_DEFAULT_OVER_LIMIT_EXTEN ") or hangs up with !CAUSE."

SWITCH_STANDARD_APP(seatgate_acquire_function) {
    switch_channel_t *channel = switch_core_session_get_channel(session);
    char err[512], why[512];
    char *mydata = zstr(data) ? NULL : switch_core_session_strdup(session, data);
    sg_app_args args;
    license_seat seat = 0;
    int32_t rc;

    if (sg_parse_app_args(mydata, &args, err, sizeof err) != 0) {
        /* A broken dialplan line must not open the gate: fail closed. */
        switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_ERROR, "seatgate_acquire: %s\n", err);
        switch_channel_set_variable(channel, "seatgate_result", sg_status_name(LICENSE_ERR_INVALID_ARGUMENT));
        switch_channel_set_variable(channel, "seatgate_refused_detail", err);
        switch_channel_hangup(channel, SWITCH_CAUSE_NORMAL_TEMPORARY_FAILURE);
        return;
    }

    {
        license_request req = {
            .size = sizeof req,
            .user = args.user,
            .profiles = args.profiles,
            .extension = switch_channel_get_variable(channel, "seatgate_extension"),
            .session = switch_core_session_get_uuid(session),
            .tenant = switch_channel_get_variable(channel, "seatgate_tenant"),
        };
        license_denial denial = {.size = sizeof denial};
        if (zstr(req.extension)) {
            req.extension = switch_channel_get_variable(channel, "caller_id_number");
        }
        if (zstr(req.extension)) {
            req.extension = NULL;
        }
        if (zstr(req.tenant)) {
            req.tenant = NULL;
        }
        rc = license_try_acquire_ex(&req, &seat, &denial);
        if (rc == LICENSE_OK) {
            char seat_text[32];
            switch_snprintf(seat_text, sizeof seat_text, "%llu", (unsigned long long)seat);
            switch_channel_set_variable(channel, "seatgate_result", "OK");
            switch_channel_set_variable(channel, "seatgate_seat", seat_text);
            if (switch_true(switch_channel_get_variable(channel, "seatgate_release_on_hangup"))) {
                const char *held = switch_channel_get_variable(channel, HANGUP_SEATS_VAR);
                if (zstr(held)) {
                    switch_channel_set_variable(channel, HANGUP_SEATS_VAR, seat_text);
                    switch_core_event_hook_add_state_change(session, release_on_hangup);
                } else {
                    switch_channel_set_variable_printf(channel, HANGUP_SEATS_VAR, "%s,%s", held, seat_text);
                }
            }
            switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_INFO,
                              "seatgate: %s took seat %s (%s)\n", args.user, seat_text, args.profiles);
            return;
        }
        last_error(why, sizeof why);
        sg_refusal_vars(rc, &denial, why, channel_set_var, channel);
    }

    switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_WARNING, "seatgate: %s refused (%s): %s\n",
                      args.user, sg_status_name(rc), why);
    if (args.on_refusal.hangup) {
        switch_call_cause_t cause = switch_channel_str2cause(args.on_refusal.cause);
        if (cause == SWITCH_CAUSE_NONE) {
            switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_WARNING,
                              "seatgate_acquire: unknown hangup cause '%s', using CALL_REJECTED\n",
                              args.on_refusal.cause);
            cause = SWITCH_CAUSE_CALL_REJECTED;
        }
        switch_channel_hangup(channel, cause);
    } else {
        switch_ivr_session_transfer(session, args.on_refusal.extension, args.on_refusal.dialplan,
                                    args.on_refusal.context);
    }
}

#define RELEASE_DESC "Gives back a seat: the handle given, or the channel's seatgate_seat."

SWITCH_STANDARD_APP(seatgate_release_function) {
    switch_channel_t *channel = switch_core_session_get_channel(session);
    const char *text = zstr(data) ? switch_channel_get_variable(channel, "seatgate_seat") : data;
    license_seat seat;
    char why[512];
    int32_t rc;

    if (zstr(text) || sg_parse_seat(text, &seat) != 0) {
        switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_ERROR,
                          "seatgate_release: '%s' is not a seat handle (give one, or set seatgate_seat)\n",
                          zstr(text) ? "" : text);
        switch_channel_set_variable(channel, "seatgate_result", sg_status_name(LICENSE_ERR_INVALID_ARGUMENT));
        return;
    }
    rc = license_release(seat);
    switch_channel_set_variable(channel, "seatgate_result", sg_status_name(rc));
    if (rc != LICENSE_OK) {
        switch_log_printf(SWITCH_CHANNEL_SESSION_LOG(session), SWITCH_LOG_WARNING,
                          "seatgate_release: seat %s: %s: %s\n", text, sg_status_name(rc), last_error(why, sizeof why));
    }
}

/* ---- load, shutdown ---- */

SWITCH_MODULE_LOAD_FUNCTION(mod_seatgate_load) {
    switch_api_interface_t *api_interface;
    switch_application_interface_t *app_interface;
    char why[512];
    uint32_t events;
    int32_t rc;

    memset(&globals, 0, sizeof globals);
    switch_mutex_init(&globals.mutex, SWITCH_MUTEX_NESTED, pool);
    if (find_config(globals.config_path, sizeof globals.config_path, &events, why, sizeof why) != 0) {
        switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "seatgate: %s\n", why);
        return SWITCH_STATUS_TERM;
    }
    license_set_event_mask(events);

    if (switch_event_reserve_subclass(SEATGATE_EVENT) != SWITCH_STATUS_SUCCESS) {
        switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "seatgate: cannot reserve %s\n", SEATGATE_EVENT);
        return SWITCH_STATUS_TERM;
    }
    license_set_event_callback(on_seatgate_event, NULL);
    if ((rc = license_init(globals.config_path)) != LICENSE_OK) {
        switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_ERROR, "seatgate: license_init(%s): %s: %s\n",
                          globals.config_path, sg_status_name(rc), last_error(why, sizeof why));
        license_set_event_callback(NULL, NULL);
        switch_event_free_subclass(SEATGATE_EVENT);
        return SWITCH_STATUS_TERM;
    }

    *module_interface = switch_loadable_module_create_module_interface(pool, modname);
    SWITCH_ADD_API(api_interface, "seatgate", "license seats: report, acquire, release, reload", seatgate_api,
                   SG_API_SYNTAX);
    switch_console_set_complete("add seatgate report text");
    switch_console_set_complete("add seatgate report json");
    switch_console_set_complete("add seatgate acquire");
    switch_console_set_complete("add seatgate release");
    switch_console_set_complete("add seatgate touch");
    switch_console_set_complete("add seatgate usage");
    switch_console_set_complete("add seatgate reload");
    SWITCH_ADD_APP(app_interface, "seatgate_acquire", "Take license seats, or act on a refusal", ACQUIRE_DESC,
                   seatgate_acquire_function, SG_APP_SYNTAX, SAF_SUPPORT_NOMEDIA);
    SWITCH_ADD_APP(app_interface, "seatgate_release", "Give back a license seat", RELEASE_DESC,
                   seatgate_release_function, "[<seat>]", SAF_SUPPORT_NOMEDIA);

    switch_log_printf(SWITCH_CHANNEL_LOG, SWITCH_LOG_NOTICE, "seatgate %s: seats from %s\n", license_version(),
                      globals.config_path);
    return SWITCH_STATUS_SUCCESS;
}

SWITCH_MODULE_SHUTDOWN_FUNCTION(mod_seatgate_shutdown) {
    switch_console_set_complete("del seatgate");
    /* Shutdown releases every seat with RELEASED events: deliver them, then unhook. */
    license_shutdown();
    license_set_event_callback(NULL, NULL);
    switch_event_free_subclass(SEATGATE_EVENT);
    return SWITCH_STATUS_SUCCESS;
}
