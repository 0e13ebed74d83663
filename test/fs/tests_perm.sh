# tests_perm.sh - ownership and permissions seen by a non-root user
# (uid/gid 65534 through setpriv), umask handling, setgid directories,
# sticky directories, setuid clearing.  All need root to switch users.
#
# Every check runs twice (see harness.sh for the mount options):
#   perm_NAME                 the non-root user works through mount 1
#                             (allow_other,default_permissions): the
#                             kernel checks modes, then the server checks
#                             the request's credentials again;
#   perm_NAME_server_checked  the same through mount 2 (allow_other only):
#                             only the server checks.
# Root prepares files through mount 1 ($P); the non-root user and the
# checks use $C (mount 1 or 2).  Preparing through mount 1 keeps mount 2's
# dentry cache cold, so the server really sees the non-root lookups: a
# FUSE mount without default_permissions does not re-check search
# permission on directories whose entries it has cached (a kernel
# property, shown by ORFA_FS_MOUNT_OPTS=allow_other on
# perm_eacces_dir_without_search).
# Sourced by harness.sh; see lib.sh.

# perm_test NAME: registers perm_NAME and perm_NAME_server_checked, both
# running p_NAME with P/C set.
perm_test() {
	fs_test "perm_$1" root
	fs_test "perm_$1_server_checked" root
	eval "t_perm_$1() { P=\$W C=\$W p_$1; }"
	eval "t_perm_$1_server_checked() { P=\$W C=\$W2 p_$1; }"
}

# A world-writable directory for the non-root user.
open_dir() {
	mkdir "$P/pub" && chmod 0777 "$P/pub" || fail "cannot make $P/pub"
}

perm_test nonroot_file_owner
p_nonroot_file_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c ": > '$C/pub/f'"
	expect_eq "owner" "$(st %u:%g "$C/pub/f")" 65534:65534
	expect_eq "owner via the other mount" "$(st %u:%g "$W2/pub/f")" 65534:65534
}

perm_test nonroot_dir_owner
p_nonroot_dir_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" mkdir "$C/pub/d"
	expect_eq "owner" "$(st %u:%g "$C/pub/d")" 65534:65534
}

perm_test nonroot_symlink_owner
p_nonroot_symlink_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" ln -s target "$C/pub/l"
	expect_eq "owner" "$(st %u:%g "$C/pub/l")" 65534:65534
}

# umask_case UMASK FILE_MODE DIR_MODE
umask_case() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c "umask $1 && : > '$C/pub/f' && mkdir '$C/pub/d'"
	expect_eq "file mode with umask $1" "$(st %a "$C/pub/f")" "$2"
	expect_eq "dir mode with umask $1" "$(st %a "$C/pub/d")" "$3"
	expect_eq "file mode via the other mount" "$(st %a "$P/pub/f")" "$2"
}

perm_test umask_022
p_umask_022() {
	umask_case 022 644 755
}

perm_test umask_027
p_umask_027() {
	umask_case 027 640 750
}

perm_test requested_mode_masked
p_requested_mode_masked() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c "umask 027 && '$FSOPS' creat-excl '$C/pub/f' 0751"
	expect_eq "mode 0751 & ~027" "$(st %a "$C/pub/f")" 750
	expect_ok "${NOBODY[@]}" sh -c "umask 077 && '$FSOPS' mkdir '$C/pub/d' 0775"
	expect_eq "dir mode 0775 & ~077" "$(st %a "$C/pub/d")" 700
}

perm_test eacces_read_root_0600
p_eacces_read_root_0600() {
	printf 'secret' > "$P/f"
	chmod 0600 "$P/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$C/f" r
}

perm_test eacces_write_root_0644
p_eacces_write_root_0644() {
	printf 'data' > "$P/f"
	chmod 0644 "$P/f"
	expect_ok "${NOBODY[@]}" "$FSOPS" open "$C/f" r
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$C/f" w
	expect_eq "content kept" "$(cat "$P/f")" data
}

# access(2) (test -r/-w/-x) answers for the caller, not for root.
perm_test access_call_denied
p_access_call_denied() {
	printf 'x' > "$P/f"
	chmod 0640 "$P/f"
	"${NOBODY[@]}" test -r "$C/f" && fail "access(R_OK) allowed on a 0640 root file"
	"${NOBODY[@]}" test -w "$C/f" && fail "access(W_OK) allowed on a 0640 root file"
	chmod 0644 "$P/f"
	"${NOBODY[@]}" test -r "$C/f" || fail "access(R_OK) denied on a 0644 file"
	return 0
}

perm_test eacces_dir_without_search
p_eacces_dir_without_search() {
	mkdir -m 0700 "$P/d"
	: > "$P/d/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" stat "$C/d/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$C/d" dir
}

perm_test eacces_create_in_readonly_dir
p_eacces_create_in_readonly_dir() {
	mkdir -m 0755 "$P/d"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" creat-excl "$C/d/f"
	[ ! -e "$P/d/f" ] || fail "file was created anyway"
}

perm_test setgid_dir_file_group
p_setgid_dir_file_group() {
	mkdir "$P/sg"
	chgrp 1234 "$P/sg" && chmod 2777 "$P/sg" || fail "setup failed"
	expect_eq "dir mode" "$(st %a "$P/sg")" 2777
	expect_ok "${NOBODY[@]}" sh -c ": > '$C/sg/f'"
	expect_eq "file owner:group" "$(st %u:%g "$C/sg/f")" 65534:1234
}

perm_test setgid_dir_subdir_inherits
p_setgid_dir_subdir_inherits() {
	mkdir "$P/sg"
	chgrp 1234 "$P/sg" && chmod 2777 "$P/sg" || fail "setup failed"
	expect_ok "${NOBODY[@]}" mkdir "$C/sg/sub"
	expect_eq "subdir group" "$(st %g "$C/sg/sub")" 1234
	[ $((0$(st %a "$C/sg/sub") & 02000)) -ne 0 ] ||
		fail "subdir mode $(st %a "$C/sg/sub") lacks the setgid bit"
}

perm_test chown_by_nonroot_eperm
p_chown_by_nonroot_eperm() {
	open_dir
	"${NOBODY[@]}" sh -c ": > '$C/pub/f'"
	run "${NOBODY[@]}" chown 0 "$C/pub/f"
	[ "$RC" -ne 0 ] || fail "non-root chown to root succeeded"
	case $OUT in
	*"Operation not permitted"*) ;;
	*) fail "chown error was not EPERM: $OUT" ;;
	esac
	expect_eq owner "$(st %u "$C/pub/f")" 65534
}

perm_test chmod_other_users_file_eperm
p_chmod_other_users_file_eperm() {
	: > "$P/f"
	run "${NOBODY[@]}" chmod 0777 "$C/f"
	[ "$RC" -ne 0 ] || fail "non-owner chmod succeeded"
	case $OUT in
	*"Operation not permitted"*) ;;
	*) fail "chmod error was not EPERM: $OUT" ;;
	esac
	expect_eq mode "$(st %a "$P/f")" 644
}

perm_test owner_chmod_ok
p_owner_chmod_ok() {
	open_dir
	"${NOBODY[@]}" sh -c ": > '$C/pub/f'"
	expect_ok "${NOBODY[@]}" chmod 0604 "$C/pub/f"
	expect_eq mode "$(st %a "$C/pub/f")" 604
}

perm_test sticky_dir_delete_eperm
p_sticky_dir_delete_eperm() {
	mkdir "$P/tmp" && chmod 1777 "$P/tmp"
	: > "$P/tmp/roots"
	expect_err EPERM "${NOBODY[@]}" "$FSOPS" unlink "$C/tmp/roots"
	[ -e "$P/tmp/roots" ] || fail "non-owner removed root's file from a sticky directory"
}

# A write by another user must succeed and drop the setuid bit.
perm_test write_by_other_clears_setuid
p_write_by_other_clears_setuid() {
	printf '#!/bin/sh\n' > "$P/f"
	chmod 04777 "$P/f"
	expect_ok "${NOBODY[@]}" "$FSOPS" pwrite "$C/f" 10 x
	expect_eq size "$(st %s "$C/f")" 11
	[ $((0$(st %a "$C/f") & 04000)) -eq 0 ] ||
		fail "setuid bit kept after a write by another user (mode $(st %a "$C/f"))"
}

fs_test perm_root_chown_applies root
t_perm_root_chown_applies() {
	: > "$W/f"
	expect_ok chown 4321:5432 "$W/f"
	expect_eq owner "$(st %u:%g "$W/f")" 4321:5432
	expect_eq "owner via second mount" "$(st %u:%g "$W2/f")" 4321:5432
}
