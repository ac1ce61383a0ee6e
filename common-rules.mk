# SPDX-License-Identifier: BSD-3-Clause
# Included by every Makefile.am.
NULL =

# The tree's own compiler flags, added to the user's CFLAGS (which
# configure leaves alone): warnings, threads, sanitizers, hardening
# (configure.ac says why each is there).  Automake passes a target's
# CFLAGS to its link too, which is what -pthread and -fsanitize need.
# Targets without _CFLAGS of their own get them as AM_CFLAGS; a
# target's own _CFLAGS should start with $(AM_CFLAGS).
AM_CFLAGS = \
	@WARNINGS_CFLAGS@ \
	$(PTHREAD_CFLAGS) \
	$(SANITIZER_CFLAGS) \
	$(HARDENING_CFLAGS) \
	$(NULL)
