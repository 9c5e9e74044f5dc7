# The vmlinux.o link as kbuild ran it, for tests/kernel/kernel.sh and the
# benchmarks (sourced), and what the benchmarks time it with.
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

# vmlinux_o_stock OUT OUTPUT: stock ld.lld-19's vmlinux.o link in OUT (after
# vmlinux_o_args) into OUTPUT; its wall seconds on stdout.
vmlinux_o_stock() {
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$1" && ld.lld-19 "${VMLINUX_O_ARGS[@]}" -o "$2")
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# median: of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
