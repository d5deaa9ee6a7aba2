"""The Fieldradio dispatcher console, ``ptt-dispatch`` (Textual)."""
