# SPDX-License-Identifier: BSD-3-Clause
# Read by build.sh together with a directory's generated Makefile
# (make -f Makefile -f printvars.mk ...), to compile that directory's
# sources exactly as its Makefile.am lists them, with its own -I/-D
# flags, whatever other engineers add there.  GNU make.
fuzz_cppvars = $(filter %_CPPFLAGS %_CFLAGS,$(.VARIABLES))
fuzz-print-sources:
	@echo $(addprefix $(srcdir)/,$(filter %.c,$(SOURCES)))
fuzz-print-cppflags:
	@echo $(DEFS) $(DEFAULT_INCLUDES) $(INCLUDES) $(CPPFLAGS) \
	  $(foreach v,$(fuzz_cppvars),$($(v)))
fuzz-print-libs:
	@echo $(foreach v,$(filter %_LDADD %_LIBADD,$(.VARIABLES)),$($(v))) \
	  $(LIBS)
