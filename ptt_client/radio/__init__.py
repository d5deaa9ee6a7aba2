"""``ptt-radio``: a push-to-talk radio in a terminal, or headless from a script.

    ptt-radio --credential FILE [--passphrase-env VAR] [--server wss://HOST:PORT]
              --channel NAME [--input mic|FILE.wav] [--output speaker|FILE.wav|DIR]
              [--script "..."] [--json] [--list-devices]
              [--gps HOST:PORT | --position LAT,LON] [--scan NAME,NAME] [--no-udp]
              [--frame-ms 20] [--answer auto|manual] [--call-input mic|FILE.wav]
              [--call-output speaker|FILE.wav|DIR] [--call-relay-only]

It logs in with the credential bundle, joins ``--channel`` (and listens to every ``--scan``
channel: the player picks the highest-priority stream), plays what it hears on the output
(a directory gets one WAV per received burst) and then either runs ``--script`` (the steps
are :data:`ptt_client.script.SCRIPT_STEPS`) or reads keys from the terminal (the keys are
:data:`ptt_client.radio.keys.KEY_BINDINGS`); ``ptt-radio --help`` lists both, from those
tables.

On a terminal a status line, redrawn in place, shows the channel, the floor, the talker
("verified" once the talker's burst signature checked), the media path (udp/tunnel) and the
link quality (frames lost in the jitter buffer). Every event worth reading prints on a line
of its own, after the time; headless (no terminal) the floor, the talker, the media path
and the channels joined do too, since no status line shows them. ``--json`` prints one JSON
object per event instead (:mod:`~ptt_client.radio.json_events`).

Anything that stops the radio from starting (bad arguments, credential file or passphrase,
refused login, unknown channel) is one line on stderr and exit status 2; stopped before the
server could be reached (the script's ``quit``, a signal) is exit status 3.

The package, one concern a module: :mod:`~ptt_client.radio.cli` (the flags, running the radio
as a process, :func:`main`), :mod:`~ptt_client.radio.help_text` (``--help``'s steps and keys),
:mod:`~ptt_client.radio.credentials` (the bundle and its passphrase),
:mod:`~ptt_client.radio.keys` (what each key means, reading the terminal),
:mod:`~ptt_client.radio.display` (the status line and the notes of what the radio hears),
:mod:`~ptt_client.radio.session_notes` (the link, the media path, the floor),
:mod:`~ptt_client.radio.trust_notes` (rosters and credentials that concern the officer),
:mod:`~ptt_client.radio.own_notes` (what the radio itself does),
:mod:`~ptt_client.radio.calling` (private calls: their audio and the officer's call actions),
:mod:`~ptt_client.radio.call_notes` (the notes and status of a call),
:mod:`~ptt_client.radio.notes` (a note), :mod:`~ptt_client.radio.console` and
:mod:`~ptt_client.radio.json_events` (writing notes as lines or JSON) and
:mod:`~ptt_client.radio.app` (the running radio: client, audio, GPS, script). Failures are
:class:`RadioError` (:mod:`~ptt_client.radio.errors`).
"""

# The program, and what embedding a radio needs; the key map is in ptt_client.radio.keys.
from ptt_client.radio.app import Radio
from ptt_client.radio.cli import main
from ptt_client.radio.console import Console, JsonConsole
from ptt_client.radio.display import StatusView, status_line
from ptt_client.radio.errors import RadioError

__all__ = ["Console", "JsonConsole", "Radio", "RadioError", "StatusView", "main", "status_line"]
