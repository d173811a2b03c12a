################################################################################
#
# callbox
#
################################################################################

# The firmware is the source tree this external tree lives in. Buildroot
# copies it with rsync; the exclusions keep build outputs and caches of a
# developer's checkout out of the copy.
CALLBOX_VERSION = local
CALLBOX_SITE = $(BR2_EXTERNAL_CALLBOX_PATH)/..
CALLBOX_SITE_METHOD = local
CALLBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/bin --exclude=/.cache --exclude=/buildroot \
	--exclude=node_modules

CALLBOX_GOMOD = github.com/callbox/callbox
CALLBOX_BUILD_TARGETS = cmd/callbox
# host-rauc: post-image.sh signs the update bundle with it.
CALLBOX_DEPENDENCIES = host-pkgconf portaudio opus opusfile speexdsp $(if $(BR2_PACKAGE_RAUC),host-rauc)

# The box reports the git version of the tree it was built from, like
# `make build` does; a tree without git history says "local".
CALLBOX_GIT_VERSION := $(or $(shell git -C $(CALLBOX_SITE) describe --always --dirty 2>/dev/null),local)
CALLBOX_LDFLAGS = -s -w -X $(CALLBOX_GOMOD)/firmware.Version=$(CALLBOX_GIT_VERSION)

# Buildroot builds Go packages with GOFLAGS=-mod=vendor and GOPROXY=off, and
# it vendors modules only for packages it downloads, never for a local source
# tree: the tree must carry vendor/ (make vendor, run by scripts/image.sh).
define CALLBOX_CHECK_VENDOR
	@test -f $(@D)/vendor/modules.txt || { \
		echo "callbox: $(CALLBOX_SITE)/vendor is missing; run 'make vendor' in the source tree" >&2; \
		exit 1; }
endef
CALLBOX_PRE_BUILD_HOOKS += CALLBOX_CHECK_VENDOR

# The defaults the box runs on until a callbox.toml is imported from the boot
# partition; post-image.sh also puts this file on the boot partition for
# people to edit.
define CALLBOX_INSTALL_CONFIG
	$(INSTALL) -D -m 0644 $(@D)/board/callbox.example.toml \
		$(TARGET_DIR)/etc/callbox/callbox.toml
endef
CALLBOX_POST_INSTALL_TARGET_HOOKS += CALLBOX_INSTALL_CONFIG

$(eval $(golang-package))
