# SPDX-License-Identifier: BSD-3-Clause
# Included by every Makefile.am.
NULL =
