"""The console's screens: the main dispatcher screen and its dialogs."""
