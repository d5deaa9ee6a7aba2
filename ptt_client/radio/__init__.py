"""``ptt-radio``: a push-to-talk radio in a terminal, or headless from a script.

    ptt-radio --credential FILE [--passphrase-env VAR] [--server wss://HOST:PORT]
              --channel NAME [--input mic|FILE.wav] [--output speaker|FILE.wav|DIR]
              [--script "..."] [--list-devices] [--gps HOST:PORT | --position LAT,LON]
              [--scan NAME,NAME] [--no-udp] [--frame-ms 20]

It logs in with the credential bundle, joins ``--channel`` (and listens to every ``--scan``
channel: the player picks the highest-priority stream), plays what it hears on the output
(a directory gets one WAV per received burst) and then either runs ``--script`` (see
:mod:`ptt_client.script`) or reads keys from the terminal:

=========  ====================================================================
space      PTT on / off (talks from the input until pressed again)
1-9        select channel n (as numbered at start)
s          next status (available, busy, en route, on scene)
e          emergency: alert with position, then the mic opens at emergency
           priority for 10 s
c          cancel the emergency
m          type a text to the selected channel (Enter sends, Esc cancels)
q          quit
=========  ====================================================================

A status line, redrawn in place, shows the channel, the floor, the talker ("verified" once
the talker's burst signature checked), the media path (udp/tunnel) and the link quality
(frames lost in the jitter buffer). Received texts and alerts print on their own lines.

Anything that stops the radio from starting (bad arguments, credential file or passphrase,
refused login, unknown channel) is one line on stderr and exit status 2.

The package, one concern a module: :mod:`~ptt_client.radio.cli` (the flags, running the radio
as a process, :func:`main`), :mod:`~ptt_client.radio.credentials` (the bundle and its
passphrase), :mod:`~ptt_client.radio.keys` (what each key means, reading the terminal),
:mod:`~ptt_client.radio.display` (the status line and the line per event) and
:mod:`~ptt_client.radio.app` (the running radio: client, audio, GPS, script). Failures are
:class:`RadioError` (:mod:`~ptt_client.radio.errors`).
"""

# The program, and what embedding a radio needs; the key map is in ptt_client.radio.keys.
from ptt_client.radio.app import Radio
from ptt_client.radio.cli import main
from ptt_client.radio.display import Console, StatusView, status_line
from ptt_client.radio.errors import RadioError

__all__ = ["Console", "Radio", "RadioError", "StatusView", "main", "status_line"]
