"""The console's widgets: each renders one part of :class:`tui.state.ConsoleState`."""
