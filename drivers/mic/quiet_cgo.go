//go:build cgo

package mic

// PortAudio's device probe goes through ALSA's configuration (every PCM in
// alsa.conf: front, rear, surround51, hdmi, modem...) and tries to become a
// JACK client. On a machine without a sound card, or without a JACK server
// (the usual case), both libraries print their failures straight to stderr,
// dozens of lines per probe ("ALSA lib confmisc.c:855:(parse_card) cannot
// find card '0'", "jack server is not running or cannot be started"), none
// of them actionable: PortAudio reports the outcome as an error anyway.
//
// quietAudioLibs installs a silent error handler in both libraries before
// the first Pa_Initialize. The functions are looked up with dlsym in the
// libraries libportaudio already loaded, so callbox links nothing more and
// a PortAudio built without JACK (Buildroot's) simply has no JACK handler
// to install. CALLBOX_AUDIO_DEBUG=1 leaves the libraries' messages alone.

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static void callbox_alsa_quiet(const char *file, int line, const char *function, int err, const char *fmt, ...) {}
static void callbox_jack_quiet(const char *msg) {}

typedef void (*callbox_alsa_handler)(const char *, int, const char *, int, const char *, ...);
typedef int (*callbox_alsa_set)(callbox_alsa_handler);
typedef void (*callbox_jack_set)(void (*)(const char *));

// callbox_quiet_audio returns a bit set: 1 ALSA handler installed, 2 JACK
// error handler, 4 JACK info handler.
static int callbox_quiet_audio(void) {
	int done = 0;
	callbox_alsa_set alsa = (callbox_alsa_set)dlsym(RTLD_DEFAULT, "snd_lib_error_set_handler");
	if (alsa != NULL && alsa(callbox_alsa_quiet) == 0) done |= 1;
	callbox_jack_set jerr = (callbox_jack_set)dlsym(RTLD_DEFAULT, "jack_set_error_function");
	if (jerr != NULL) { jerr(callbox_jack_quiet); done |= 2; }
	callbox_jack_set jinfo = (callbox_jack_set)dlsym(RTLD_DEFAULT, "jack_set_info_function");
	if (jinfo != NULL) { jinfo(callbox_jack_quiet); done |= 4; }
	return done;
}
*/
import "C"

import (
	"os"
	"sync"
)

var (
	quietOnce sync.Once
	quietMask int // what callbox_quiet_audio installed (for tests)
)

// quietAudioLibs silences ALSA and JACK (see above) once per process; call
// it before portaudio.Initialize.
func quietAudioLibs() {
	quietOnce.Do(func() {
		if os.Getenv("CALLBOX_AUDIO_DEBUG") == "1" {
			return
		}
		// PortAudio already asks JACK not to start a server; the
		// variable makes sure nothing else in libjack tries to.
		if _, ok := os.LookupEnv("JACK_NO_START_SERVER"); !ok {
			os.Setenv("JACK_NO_START_SERVER", "1")
		}
		quietMask = int(C.callbox_quiet_audio())
	})
}

// QuietAudioLibs is quietAudioLibs for the other PortAudio user in the
// process, the speaker driver.
func QuietAudioLibs() { quietAudioLibs() }
