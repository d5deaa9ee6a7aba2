"""The Fieldradio relay server: routes and arbitrates, cannot listen."""
