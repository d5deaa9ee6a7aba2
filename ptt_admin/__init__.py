"""``ptt-admin``: the organisation's authority, on its own machine.

It holds the org root (encrypted with a passphrase) and its own admin keys in its
own directory, issues credentials and revocation lists, signs rosters and makes
channel epochs, and sends those signed objects to the relay as a logged-in admin
client over the control plane. It never opens the relay's files: the relay holds
only ``root.pub``, its TLS pair and a database of signed and sealed objects.

Modules: :mod:`ptt_admin.authority` (the authority's directory and keys, offline),
:mod:`ptt_admin.session` (the logged-in admin client), :mod:`ptt_admin.people`
(enrol, revoke, list users), :mod:`ptt_admin.channels` (channels and their epochs),
:mod:`ptt_admin.cli` (the command line).
"""
