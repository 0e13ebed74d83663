# tests_perm.sh - ownership and permissions seen by a non-root user
# (uid/gid 65534 through setpriv), umask handling, setgid directories,
# sticky directories.  All need root to switch users.
#
# The ORFA mounts use -o allow_other (so uid 65534 may enter a mount that
# root started) and, by default, not default_permissions: the server checks
# each request against the caller's credentials (see harness.sh).
# Sourced by harness.sh; see lib.sh.

# A world-writable directory for the non-root user.
open_dir() {
	mkdir "$W/pub" && chmod 0777 "$W/pub" || fail "cannot make $W/pub"
}

fs_test perm_nonroot_file_owner root
t_perm_nonroot_file_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c ": > '$W/pub/f'"
	expect_eq "owner" "$(st %u:%g "$W/pub/f")" 65534:65534
	expect_eq "owner via second mount" "$(st %u:%g "$W2/pub/f")" 65534:65534
}

fs_test perm_nonroot_dir_owner root
t_perm_nonroot_dir_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" mkdir "$W/pub/d"
	expect_eq "owner" "$(st %u:%g "$W/pub/d")" 65534:65534
}

fs_test perm_nonroot_symlink_owner root
t_perm_nonroot_symlink_owner() {
	open_dir
	expect_ok "${NOBODY[@]}" ln -s target "$W/pub/l"
	expect_eq "owner" "$(st %u:%g "$W/pub/l")" 65534:65534
}

# umask_case UMASK FILE_MODE DIR_MODE
umask_case() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c "umask $1 && : > '$W/pub/f' && mkdir '$W/pub/d'"
	expect_eq "file mode with umask $1" "$(st %a "$W/pub/f")" "$2"
	expect_eq "dir mode with umask $1" "$(st %a "$W/pub/d")" "$3"
	expect_eq "file mode via second mount" "$(st %a "$W2/pub/f")" "$2"
}

fs_test perm_umask_022 root
t_perm_umask_022() {
	umask_case 022 644 755
}

fs_test perm_umask_027 root
t_perm_umask_027() {
	umask_case 027 640 750
}

fs_test perm_requested_mode_masked root
t_perm_requested_mode_masked() {
	open_dir
	expect_ok "${NOBODY[@]}" sh -c "umask 027 && '$FSOPS' creat-excl '$W/pub/f' 0751"
	expect_eq "mode 0751 & ~027" "$(st %a "$W/pub/f")" 750
	expect_ok "${NOBODY[@]}" sh -c "umask 077 && '$FSOPS' mkdir '$W/pub/d' 0775"
	expect_eq "dir mode 0775 & ~077" "$(st %a "$W/pub/d")" 700
}

fs_test perm_eacces_read_root_0600 root
t_perm_eacces_read_root_0600() {
	printf 'secret' > "$W/f"
	chmod 0600 "$W/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$W/f" r
}

fs_test perm_eacces_write_root_0644 root
t_perm_eacces_write_root_0644() {
	printf 'data' > "$W/f"
	chmod 0644 "$W/f"
	expect_ok "${NOBODY[@]}" "$FSOPS" open "$W/f" r
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$W/f" w
	expect_eq "content kept" "$(cat "$W/f")" data
}

fs_test perm_eacces_dir_without_search root
t_perm_eacces_dir_without_search() {
	mkdir -m 0700 "$W/d"
	: > "$W/d/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" stat "$W/d/f"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" open "$W/d" dir
}

fs_test perm_eacces_create_in_readonly_dir root
t_perm_eacces_create_in_readonly_dir() {
	mkdir -m 0755 "$W/d"
	expect_err EACCES "${NOBODY[@]}" "$FSOPS" creat-excl "$W/d/f"
	[ ! -e "$W/d/f" ] || fail "file was created anyway"
}

fs_test perm_setgid_dir_file_group root
t_perm_setgid_dir_file_group() {
	mkdir "$W/sg"
	chgrp 1234 "$W/sg" && chmod 2777 "$W/sg" || fail "setup failed"
	expect_eq "dir mode" "$(st %a "$W/sg")" 2777
	expect_ok "${NOBODY[@]}" sh -c ": > '$W/sg/f'"
	expect_eq "file owner:group" "$(st %u:%g "$W/sg/f")" 65534:1234
}

fs_test perm_setgid_dir_subdir_inherits root
t_perm_setgid_dir_subdir_inherits() {
	mkdir "$W/sg"
	chgrp 1234 "$W/sg" && chmod 2777 "$W/sg" || fail "setup failed"
	expect_ok "${NOBODY[@]}" mkdir "$W/sg/sub"
	expect_eq "subdir group" "$(st %g "$W/sg/sub")" 1234
	[ $((0$(st %a "$W/sg/sub") & 02000)) -ne 0 ] ||
		fail "subdir mode $(st %a "$W/sg/sub") lacks the setgid bit"
}

fs_test perm_chown_by_nonroot_eperm root
t_perm_chown_by_nonroot_eperm() {
	open_dir
	"${NOBODY[@]}" sh -c ": > '$W/pub/f'"
	run "${NOBODY[@]}" chown 0 "$W/pub/f"
	[ "$RC" -ne 0 ] || fail "non-root chown to root succeeded"
	case $OUT in
	*"Operation not permitted"*) ;;
	*) fail "chown error was not EPERM: $OUT" ;;
	esac
	expect_eq owner "$(st %u "$W/pub/f")" 65534
}

fs_test perm_chmod_other_users_file_eperm root
t_perm_chmod_other_users_file_eperm() {
	: > "$W/f"
	run "${NOBODY[@]}" chmod 0777 "$W/f"
	[ "$RC" -ne 0 ] || fail "non-owner chmod succeeded"
	case $OUT in
	*"Operation not permitted"*) ;;
	*) fail "chmod error was not EPERM: $OUT" ;;
	esac
}

fs_test perm_owner_chmod_ok root
t_perm_owner_chmod_ok() {
	open_dir
	"${NOBODY[@]}" sh -c ": > '$W/pub/f'"
	expect_ok "${NOBODY[@]}" chmod 0604 "$W/pub/f"
	expect_eq mode "$(st %a "$W/pub/f")" 604
}

fs_test perm_root_chown_applies root
t_perm_root_chown_applies() {
	: > "$W/f"
	expect_ok chown 4321:5432 "$W/f"
	expect_eq owner "$(st %u:%g "$W/f")" 4321:5432
	expect_eq "owner via second mount" "$(st %u:%g "$W2/f")" 4321:5432
}

fs_test perm_sticky_dir_delete_eperm root
t_perm_sticky_dir_delete_eperm() {
	mkdir "$W/tmp" && chmod 1777 "$W/tmp"
	: > "$W/tmp/roots"
	run "${NOBODY[@]}" rm -f "$W/tmp/roots"
	[ -e "$W/tmp/roots" ] || fail "non-owner removed root's file from a sticky directory"
	case $OUT in
	*"Operation not permitted"*) ;;
	*) fail "error was not EPERM: $OUT" ;;
	esac
}

fs_test perm_write_by_other_clears_setuid root
t_perm_write_by_other_clears_setuid() {
	printf '#!/bin/sh\n' > "$W/f"
	chmod 04777 "$W/f"
	expect_ok "${NOBODY[@]}" sh -c "printf x >> '$W/f'"
	[ $((0$(st %a "$W/f") & 04000)) -eq 0 ] ||
		fail "setuid bit kept after a write by another user (mode $(st %a "$W/f"))"
}
