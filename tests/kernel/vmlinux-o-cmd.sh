# The vmlinux.o link as kbuild ran it, for tests/kernel/kernel.sh and the
# benchmarks (sourced).
#
# vmlinux_o_args OUT: reads OUT/.vmlinux.o.cmd (cmd_vmlinux.o, or
# savedcmd_vmlinux.o since Linux 6.11) and sets the array VMLINUX_O_ARGS to the
# link's arguments without the linker, its -o and what follows it (objtool).
vmlinux_o_args() {
  local cmdline args i
  cmdline=$(sed -n 's/^\(saved\)\{0,1\}cmd_vmlinux.o := //p' "$1/.vmlinux.o.cmd" | sed 's/;.*//')
  read -r -a args <<< "$cmdline"
  VMLINUX_O_ARGS=()
  for ((i = 1; i < ${#args[@]}; i++)); do
    if [ "${args[i]}" = -o ]; then i=$((i + 1)); continue; fi
    VMLINUX_O_ARGS+=("${args[i]}")
  done
}
