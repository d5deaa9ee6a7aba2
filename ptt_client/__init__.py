"""The Fieldradio client library and the ``ptt-radio`` program."""
