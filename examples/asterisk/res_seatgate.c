/*
 * res_seatgate: license seat limits per type on Asterisk's login paths, through
 * libseatgate.
 *
 *   SEATGATE_ACQUIRE(user,profiles[,options])  take a seat bundle; returns the seat id
 *   SEATGATE_RELEASE(seat)                     give it back; returns the status word
 *   CLI: seatgate show seats [json] | seatgate release seat <id> | seatgate release user <name>
 *   AMI: action SeatgateShowSeats; event SeatgateEvent (class reporting)
 *
 * Config: seatgate.conf, [general] config = path of the seatgate TOML (default:
 * seatgate.toml in Asterisk's config directory); events = which library events reach
 * the log and AMI (default all; "alerts" keeps logins at full speed).
 * `module reload res_seatgate` reloads both, keeping every held seat. See README.md
 * beside this file.
 *
 * Asterisk's loader accepts only modules that declare ASTERISK_GPL_KEY, so this file
 * is licensed under the GNU General Public License version 2, like Asterisk.
 */

/*** MODULEINFO
	<support_level>extended</support_level>
 ***/

/*** DOCUMENTATION
	<function name="SEATGATE_ACQUIRE" language="en_US">
		<synopsis>
			Take one seat of every license type the profiles imply, all or nothing.
		</synopsis>
		<syntax>
			<parameter name="user" required="true" />
			<parameter name="profiles" required="true">
				<para>Profile or license-type names of the seatgate config, joined with
				<literal>&amp;</literal> (or quoted with commas).</para>
			</parameter>
			<parameter name="options">
				<optionlist>
					<option name="k"><para>Keep the seat after this channel hangs up (store
					the id and release it with SEATGATE_RELEASE).</para></option>
					<option name="e"><argument name="extension" required="true" />
					<para>Extension shown in the report.</para></option>
					<option name="s"><argument name="label" required="true" />
					<para>Session label (default: the channel name).</para></option>
					<option name="t"><argument name="tenant" required="true" />
					<para>Tenant whose seat pool serves the login.</para></option>
				</optionlist>
			</parameter>
		</syntax>
		<description>
			<para>Returns the seat id (empty unless SEATGATE_STATUS is OK) and sets
			SEATGATE_STATUS (OK, REFUSED, UNKNOWN_PROFILE, UNKNOWN_TENANT, INVALID,
			UNAVAILABLE), SEATGATE_SEAT, SEATGATE_REFUSED_TYPE, SEATGATE_DENIAL and
			SEATGATE_REASON. Without the k option the seat is released when the channel
			goes away.</para>
		</description>
	</function>
	<function name="SEATGATE_RELEASE" language="en_US">
		<synopsis>
			Give back a seat taken with SEATGATE_ACQUIRE.
		</synopsis>
		<syntax>
			<parameter name="seat" required="true" />
		</syntax>
		<description>
			<para>Returns and sets SEATGATE_STATUS (OK, UNKNOWN_SEAT, INVALID,
			UNAVAILABLE) and SEATGATE_REASON.</para>
		</description>
	</function>
 ***/

#include "asterisk.h"

#include <stdlib.h>
#include <string.h>

#include "asterisk/app.h"
#include "asterisk/channel.h"
#include "asterisk/cli.h"
#include "asterisk/config.h"
#include "asterisk/datastore.h"
#include "asterisk/lock.h"
#include "asterisk/logger.h"
#include "asterisk/manager.h"
#include "asterisk/module.h"
#include "asterisk/paths.h"
#include "asterisk/pbx.h"
#include "asterisk/strings.h"
#include "asterisk/utils.h"

#include "seatgate.h"
#include "seatgate_dialplan.h"

#define SEATGATE_CONF "seatgate.conf"
#define SEATGATE_DEFAULT_TOML "seatgate.toml"

/* Guards the two below; load, reload and unload are already serialised by the
 * module loader, the CLI reads them from its own threads. */
AST_MUTEX_DEFINE_STATIC(state_lock);
/* Whether license_init succeeded (until unload), and if not, why. */
static int running;
static char init_error[512];

/* ---- seats bound to a channel: released when the channel goes away ---- */

struct channel_seats {
	size_t count;
	size_t capacity;
	license_seat *seats;
};

static void channel_seats_destroy(void *data)
{
	struct channel_seats *bound = data;
	size_t i;

	for (i = 0; i < bound->count; i++) {
		char text[SG_SEAT_TEXT_SIZE];
		int32_t rc = license_release(bound->seats[i]);

		sg_seat_format(bound->seats[i], text);
		if (rc == LICENSE_OK) {
			ast_verb(4, "seatgate: released seat %s at hangup\n", text);
		} else {
			/* Released already (admin, lease, reload from scratch): nothing to undo. */
			ast_debug(1, "seatgate: seat %s at hangup: %s\n", text, license_strerror(rc));
		}
	}
	ast_free(bound->seats);
	ast_free(bound);
	/* The reference taken when the datastore was made keeps this code loaded. */
	ast_module_unref(AST_MODULE_SELF);
}

static const struct ast_datastore_info channel_seats_info = {
	.type = "seatgate_seats",
	.destroy = channel_seats_destroy,
	/* No .duplicate: a seat belongs to the channel that took it, never to its children. */
};

/* Adds `seat` to the channel's list. Returns 0, or -1 (out of memory). */
static int bind_seat(struct ast_channel *chan, license_seat seat)
{
	struct ast_datastore *datastore;
	struct channel_seats *bound;
	int res = -1;

	ast_channel_lock(chan);
	datastore = ast_channel_datastore_find(chan, &channel_seats_info, NULL);
	if (!datastore) {
		datastore = ast_datastore_alloc(&channel_seats_info, NULL);
		bound = datastore ? ast_calloc(1, sizeof(*bound)) : NULL;
		if (!bound) {
			if (datastore) {
				ast_datastore_free(datastore);
			}
			ast_channel_unlock(chan);
			return -1;
		}
		ast_module_ref(AST_MODULE_SELF);
		datastore->data = bound;
		ast_channel_datastore_add(chan, datastore);
	}
	bound = datastore->data;
	if (bound->count == bound->capacity) {
		size_t capacity = bound->capacity ? bound->capacity * 2 : 4;
		license_seat *grown = ast_realloc(bound->seats, capacity * sizeof(*grown));

		if (grown) {
			bound->seats = grown;
			bound->capacity = capacity;
		}
	}
	if (bound->count < bound->capacity) {
		bound->seats[bound->count++] = seat;
		res = 0;
	}
	ast_channel_unlock(chan);
	return res;
}

/* Forgets `seat` on the channel (it was released by the dialplan). */
static void unbind_seat(struct ast_channel *chan, license_seat seat)
{
	struct ast_datastore *datastore;
	struct channel_seats *bound;
	size_t i;

	ast_channel_lock(chan);
	datastore = ast_channel_datastore_find(chan, &channel_seats_info, NULL);
	bound = datastore ? datastore->data : NULL;
	for (i = 0; bound && i < bound->count; i++) {
		if (bound->seats[i] == seat) {
			bound->seats[i] = bound->seats[--bound->count];
			break;
		}
	}
	ast_channel_unlock(chan);
}

/* ---- dialplan functions ---- */

static void set_result_variables(struct ast_channel *chan, const struct sg_result *result)
{
	if (!chan) {
		return;
	}
	pbx_builtin_setvar_helper(chan, "SEATGATE_STATUS", result->status);
	pbx_builtin_setvar_helper(chan, "SEATGATE_SEAT", result->seat);
	pbx_builtin_setvar_helper(chan, "SEATGATE_REFUSED_TYPE", result->refused_type);
	pbx_builtin_setvar_helper(chan, "SEATGATE_DENIAL", result->denial);
	pbx_builtin_setvar_helper(chan, "SEATGATE_REASON", result->reason);
}

static void log_result(struct ast_channel *chan, const char *what, const char *who,
	const struct sg_result *result)
{
	const char *name = chan ? ast_channel_name(chan) : "(no channel)";

	if (result->code == LICENSE_OK) {
		ast_verb(3, "seatgate: %s %s: OK %s on %s\n", what, who, result->seat, name);
	} else if (!strcmp(result->status, "INVALID")) {
		ast_log(LOG_WARNING, "seatgate: %s %s on %s: INVALID: %s\n", what, who, name, result->reason);
	} else if (!strcmp(result->status, "UNAVAILABLE")) {
		ast_log(LOG_ERROR, "seatgate: %s %s on %s: UNAVAILABLE: %s\n", what, who, name, result->reason);
	} else {
		ast_verb(3, "seatgate: %s %s on %s: %s: %s\n", what, who, name, result->status, result->reason);
	}
}

static int acquire_read(struct ast_channel *chan, const char *cmd, char *data, char *buf, size_t len)
{
	struct sg_options options;
	struct sg_result result;
	char why[256];
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(user);
		AST_APP_ARG(profiles);
		AST_APP_ARG(options);
	);

	buf[0] = '\0';
	AST_STANDARD_APP_ARGS(args, data);
	if (args.argc > 3) {
		sg_result_error(&result, LICENSE_ERR_INVALID_ARGUMENT, "%s takes (user,profiles[,options]), got %d "
			"arguments; join profiles with & or quote the list", cmd, args.argc);
	} else if (!sg_options_parse(args.options, &options, why, sizeof(why))) {
		sg_result_error(&result, LICENSE_ERR_INVALID_ARGUMENT, "%s: %s", cmd, why);
	} else {
		sg_profiles_from_dialplan(args.profiles);
		sg_acquire(args.user, args.profiles, &options, chan ? ast_channel_name(chan) : NULL, &result);
		if (result.code == LICENSE_OK && chan && !options.keep && bind_seat(chan, result.seat_value)) {
			license_release(result.seat_value);
			sg_result_error(&result, LICENSE_ERR_INTERNAL, "out of memory binding the seat to the channel");
		}
	}
	log_result(chan, "acquire for", S_OR(args.user, "(no user)"), &result);
	set_result_variables(chan, &result);
	ast_copy_string(buf, result.seat, len);
	return 0;
}

static int release_read(struct ast_channel *chan, const char *cmd, char *data, char *buf, size_t len)
{
	struct sg_result result;
	AST_DECLARE_APP_ARGS(args,
		AST_APP_ARG(seat);
	);

	AST_STANDARD_APP_ARGS(args, data);
	if (args.argc > 1) {
		sg_result_error(&result, LICENSE_ERR_INVALID_ARGUMENT, "%s takes one seat id, got %d arguments",
			cmd, args.argc);
	} else {
		sg_release(args.seat, LICENSE_RELEASE_NORMAL, &result);
		if (chan && result.seat_value) {
			unbind_seat(chan, result.seat_value);
		}
	}
	log_result(chan, "release of", S_OR(args.seat, "(no seat)"), &result);
	set_result_variables(chan, &result);
	ast_copy_string(buf, result.status, len);
	return 0;
}

static struct ast_custom_function acquire_function = {
	.name = "SEATGATE_ACQUIRE",
	.read = acquire_read,
	.read_max = SG_SEAT_TEXT_SIZE,
};

static struct ast_custom_function release_function = {
	.name = "SEATGATE_RELEASE",
	.read = release_read,
	.read_max = 32,
};

/* ---- the library's events: the log and AMI ---- */

static void on_event(void *user_data, const struct license_event *event)
{
	char seat[SG_SEAT_TEXT_SIZE] = "";
	const char *kind = sg_event_kind_word(event->kind);
	const char *why = "";

	(void)user_data;
	if (event->seat) {
		sg_seat_format(event->seat, seat);
	}
	if (event->kind == LICENSE_EVENT_RELEASED) {
		why = sg_release_reason_word(event->reason);
	} else if (event->kind == LICENSE_EVENT_DENIED) {
		why = sg_denial_word(event->reason);
	}

	switch (event->kind) {
	case LICENSE_EVENT_RELEASED:
		if (event->reason == LICENSE_RELEASE_NORMAL || event->reason == LICENSE_RELEASE_SHUTDOWN) {
			ast_verb(4, "seatgate: %s [%s]\n", event->detail, seat);
		} else {
			/* Released without the holder asking: the agent may still think it is logged in. */
			ast_log(LOG_NOTICE, "seatgate: %s [%s] (%s)\n", event->detail, seat, why);
		}
		break;
	case LICENSE_EVENT_WARNING:
	case LICENSE_EVENT_EXPIRED:
	case LICENSE_EVENT_EMERGENCY_ENDED:
		ast_log(LOG_WARNING, "seatgate: %s\n", event->detail);
		break;
	case LICENSE_EVENT_THRESHOLD_UP:
	case LICENSE_EVENT_EMERGENCY_STARTED:
	case LICENSE_EVENT_LIMIT_CHANGED:
	case LICENSE_EVENT_RELOADED:
		ast_log(LOG_NOTICE, "seatgate: %s\n", event->detail);
		break;
	default:
		/* The detail gives the seat as a number; [sg1_...] is the id the dialplan saw. */
		ast_verb(4, "seatgate: %s%s%s%s\n", event->detail, seat[0] ? " [" : "", seat, seat[0] ? "]" : "");
		break;
	}

	manager_event(EVENT_FLAG_REPORTING, "SeatgateEvent",
		"Kind: %s\r\n"
		"Reason: %s\r\n"
		"User: %s\r\n"
		"LicenseType: %s\r\n"
		"Tenant: %s\r\n"
		"Seat: %s\r\n"
		"Used: %u\r\n"
		"Limit: %u\r\n"
		"Detail: %s\r\n",
		kind, why, S_OR(event->user, ""), S_OR(event->license_type, ""),
		S_OR(event->tenant, ""), seat, event->used, event->limit, event->detail);
}

/* ---- configuration: load, reload ---- */

/* Reads seatgate.conf into `path` (absolute) and `events` (the event mask). Returns
 * 0, or -1 with `why` set when the file exists but cannot be parsed or its `events`
 * names no event. A missing file or key means the default. */
static int read_module_config(char *path, size_t path_len, uint32_t *events, char *why, size_t why_len)
{
	struct ast_flags flags = { 0 };
	struct ast_config *cfg;
	const char *value = NULL;
	const char *mask = NULL;

	cfg = ast_config_load(SEATGATE_CONF, flags);
	if (cfg == CONFIG_STATUS_FILEINVALID) {
		snprintf(why, why_len, "%s/%s cannot be parsed", ast_config_AST_CONFIG_DIR, SEATGATE_CONF);
		return -1;
	}
	if (cfg) {
		value = ast_variable_retrieve(cfg, "general", "config");
		mask = ast_variable_retrieve(cfg, "general", "events");
	}
	*events = LICENSE_EVENTS_ALL;
	if (!ast_strlen_zero(mask) && license_event_mask_parse(mask, events) != LICENSE_OK) {
		/* The detail lists every name: a cut one is still worth logging. */
		char detail[512] = "";
		int32_t got = license_last_error(detail, sizeof(detail), NULL);
		if ((got != LICENSE_OK && got != LICENSE_ERR_BUFFER_TOO_SMALL) || !detail[0]) {
			ast_copy_string(detail, "not an event mask", sizeof(detail));
		}
		snprintf(why, why_len, "%s/%s: events: %s", ast_config_AST_CONFIG_DIR, SEATGATE_CONF, detail);
		if (cfg) {
			ast_config_destroy(cfg);
		}
		return -1;
	}
	value = S_OR(value, SEATGATE_DEFAULT_TOML);
	if (value[0] == '/') {
		snprintf(path, path_len, "%s", value);
	} else {
		snprintf(path, path_len, "%s/%s", ast_config_AST_CONFIG_DIR, value);
	}
	if (cfg) {
		ast_config_destroy(cfg);
	}
	return 0;
}

/* Starts the library, or reloads it when it runs. Returns 0 or -1 (logged, and kept
 * in init_error while the library is not running). */
static int start_or_reload(void)
{
	char path[LICENSE_MAX_PATH_LEN + 1];
	char why[sizeof(init_error)] = "";
	uint32_t events;
	int32_t rc;
	int reloading;

	if (read_module_config(path, sizeof(path), &events, why, sizeof(why))) {
		ast_log(LOG_ERROR, "seatgate: %s; nothing changed\n", why);
		ast_mutex_lock(&state_lock);
		if (!running) {
			ast_copy_string(init_error, why, sizeof(init_error));
		}
		ast_mutex_unlock(&state_lock);
		return -1;
	}
	/* `events`: which library events reach the log and AMI. It goes with the new
	 * config, both or neither: set before init, after a reload that succeeded
	 * (it cannot fail, the mask having parsed). */
	rc = license_reload(path);
	reloading = rc != LICENSE_ERR_NOT_INITIALIZED;
	if (!reloading) {
		license_set_event_mask(events);
		rc = license_init(path);
	} else if (rc == LICENSE_OK) {
		license_set_event_mask(events);
	}
	if (rc != LICENSE_OK && license_last_error(why, sizeof(why), NULL) != LICENSE_OK) {
		ast_copy_string(why, license_strerror(rc), sizeof(why));
	}

	ast_mutex_lock(&state_lock);
	if (rc == LICENSE_OK) {
		init_error[0] = '\0';
		running = 1;
	} else if (!reloading) {
		snprintf(init_error, sizeof(init_error), "%s", why);
	}
	ast_mutex_unlock(&state_lock);

	if (rc == LICENSE_OK) {
		ast_verb(2, "seatgate: %s %s (libseatgate %s)\n", reloading ? "reloaded" : "started with",
			path, license_version());
		return 0;
	}
	if (reloading) {
		ast_log(LOG_ERROR, "seatgate: reload of %s failed, the running config stays: %s\n", path, why);
	} else {
		ast_log(LOG_ERROR, "seatgate: cannot start with %s: %s. Every SEATGATE_ACQUIRE answers "
			"UNAVAILABLE until 'module reload res_seatgate' succeeds\n", path, why);
	}
	return -1;
}

/* ---- CLI ---- */

static char *cli_show_seats(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	uint32_t format = LICENSE_REPORT_TEXT;
	int32_t code;
	char why[512];
	char *report;

	switch (cmd) {
	case CLI_INIT:
		e->command = "seatgate show seats";
		e->usage =
			"Usage: seatgate show seats [json]\n"
			"       The seatgate report: used/limit per license type, warnings, and who\n"
			"       holds which seats since when.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc == e->args + 1 && !strcasecmp(a->argv[e->args], "json")) {
		format = LICENSE_REPORT_JSON;
	} else if (a->argc != e->args) {
		return CLI_SHOWUSAGE;
	}
	report = sg_report(format, &code, why, sizeof(why));
	if (!report) {
		ast_mutex_lock(&state_lock);
		if (code == LICENSE_ERR_NOT_INITIALIZED && init_error[0]) {
			ast_copy_string(why, init_error, sizeof(why));
		}
		ast_mutex_unlock(&state_lock);
		ast_cli(a->fd, "seatgate: no report (%s): %s\n", license_strerror(code), why);
		return CLI_FAILURE;
	}
	ast_cli(a->fd, "%s%s", report, format == LICENSE_REPORT_JSON ? "\n" : "");
	ast_std_free(report); /* malloc'd by seatgate_dialplan.c, not by ast_malloc */
	return CLI_SUCCESS;
}

static char *cli_release(struct ast_cli_entry *e, int cmd, struct ast_cli_args *a)
{
	struct sg_result result;
	uint32_t released = 0;
	int32_t rc;

	switch (cmd) {
	case CLI_INIT:
		e->command = "seatgate release {seat|user}";
		e->usage =
			"Usage: seatgate release seat <seat id>\n"
			"       seatgate release user <user>\n"
			"       Releases one seat, or every seat of a user, as an admin: nothing\n"
			"       lingers, and the SeatgateEvent says ADMIN. The channel that took the\n"
			"       seat is not hung up.\n";
		return NULL;
	case CLI_GENERATE:
		return NULL;
	}
	if (a->argc != e->args + 1) {
		return CLI_SHOWUSAGE;
	}
	if (!strcasecmp(a->argv[2], "seat")) {
		sg_release(a->argv[3], LICENSE_RELEASE_ADMIN, &result);
		if (result.code == LICENSE_OK) {
			ast_cli(a->fd, "Released seat %s\n", result.seat);
			return CLI_SUCCESS;
		}
		ast_cli(a->fd, "Seat not released: %s: %s\n", result.status, result.reason);
		return CLI_FAILURE;
	}
	rc = license_release_user(a->argv[3], LICENSE_RELEASE_ADMIN, &released);
	if (rc == LICENSE_OK) {
		ast_cli(a->fd, "Released %u seat handle(s) of %s\n", released, a->argv[3]);
		return CLI_SUCCESS;
	}
	if (license_last_error(result.reason, sizeof(result.reason), NULL) != LICENSE_OK) {
		result.reason[0] = '\0';
	}
	ast_cli(a->fd, "Nothing released: %s: %s\n", sg_status_word(rc), S_OR(result.reason, license_strerror(rc)));
	return CLI_FAILURE;
}

static struct ast_cli_entry cli_entries[] = {
	AST_CLI_DEFINE(cli_show_seats, "Show the seatgate license seat report"),
	AST_CLI_DEFINE(cli_release, "Release a seatgate seat or a user's seats as an admin"),
};

/* ---- AMI ---- */

static int manager_show_seats(struct mansession *s, const struct message *m)
{
	const char *format_name = astman_get_header(m, "Format");
	const char *action_id = astman_get_header(m, "ActionID");
	uint32_t format = LICENSE_REPORT_TEXT;
	int32_t code;
	char why[512];
	char *report, *line, *next;

	if (!ast_strlen_zero(format_name) && !strcasecmp(format_name, "json")) {
		format = LICENSE_REPORT_JSON;
	} else if (!ast_strlen_zero(format_name) && strcasecmp(format_name, "text")) {
		astman_send_error(s, m, "Format must be text or json");
		return 0;
	}
	report = sg_report(format, &code, why, sizeof(why));
	if (!report) {
		astman_send_error(s, m, why);
		return 0;
	}
	/* What the Command action sends: a Success response, then Output lines. */
	astman_append(s, "Response: Success\r\n");
	if (!ast_strlen_zero(action_id)) {
		astman_append(s, "ActionID: %s\r\n", action_id);
	}
	astman_append(s, "Message: Report follows\r\n");
	for (line = report; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next) {
			*next++ = '\0';
		}
		astman_append(s, "Output: %s\r\n", line);
	}
	astman_append(s, "\r\n");
	ast_std_free(report); /* malloc'd by seatgate_dialplan.c, not by ast_malloc */
	return 0;
}

/* ---- module ---- */

static int unload_module(void)
{
	ast_manager_unregister("SeatgateShowSeats");
	ast_cli_unregister_multiple(cli_entries, ARRAY_LEN(cli_entries));
	ast_custom_function_unregister(&acquire_function);
	ast_custom_function_unregister(&release_function);
	/* Every seat still held goes (RELEASED events, reason SHUTDOWN), then the
	 * callback, whose code is about to be unmapped. */
	license_shutdown();
	license_set_event_callback(NULL, NULL);
	ast_mutex_lock(&state_lock);
	running = 0;
	init_error[0] = '\0';
	ast_mutex_unlock(&state_lock);
	return 0;
}

static int load_module(void)
{
	int res = 0;

	license_set_event_callback(on_event, NULL);
	/* A config that does not load leaves the functions in place, answering
	 * UNAVAILABLE: the dialplan decides, and a reload can fix it. */
	start_or_reload();

	res |= ast_custom_function_register_escalating(&acquire_function, AST_CFE_READ);
	res |= ast_custom_function_register_escalating(&release_function, AST_CFE_READ);
	res |= ast_cli_register_multiple(cli_entries, ARRAY_LEN(cli_entries));
	res |= ast_manager_register("SeatgateShowSeats", EVENT_FLAG_REPORTING, manager_show_seats,
		"Show the seatgate license seat report (Format: text or json)");
	if (res) {
		unload_module();
		return AST_MODULE_LOAD_DECLINE;
	}
	return AST_MODULE_LOAD_SUCCESS;
}

static int reload_module(void)
{
	return start_or_reload() ? AST_MODULE_LOAD_DECLINE : AST_MODULE_LOAD_SUCCESS;
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER, "seatgate license seat limits",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.reload = reload_module,
	.load_pri = AST_MODPRI_DEFAULT,
);
