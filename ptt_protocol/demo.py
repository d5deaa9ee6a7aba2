"""A self-demo of the protocol core, until the server replaces `make run`."""

from ptt_protocol import errors


def main() -> None:
    print("Fieldradio protocol core loaded:", errors.ProtocolError.__doc__)


if __name__ == "__main__":
    main()
