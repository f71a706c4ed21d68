# Several Slurm nodes on one machine, for slurm/local-cluster.sh up --nodes N (sourced by it).
#
# Node i (node1 .. nodeN) is a network namespace `roadmap-node<i>` joined to a bridge in the root
# namespace by a veth pair, with address $SUBNET.<i>; its slurmd runs inside it and inside its
# own UTS namespace, whose hostname is node<i>. The controller listens on the bridge's address
# $SUBNET.254 (and on loopback). /etc/hosts gets one line per node and one for the controller,
# each ending with $HOSTS_MARK. munge is reached through its Unix socket, which namespaces do not
# hide. Everything created is listed in $STATE/net.created, and `down` removes what that lists.
# Traffic stays on loopback and on this private bridge.

BRIDGE=rmbr0
SUBNET=10.77.0
CTL_ADDR=$SUBNET.254
CTL_NAME=roadmap-ctl
NS_PREFIX=roadmap-node
HOSTS_MARK="# roadmap local-cluster"
CREATED="$STATE/net.created"

node_name() { echo "node$1"; }

created() { echo "$*" >>"$CREATED"; }

# hosts_add ADDR NAME: one /etc/hosts line (written in place: /etc/hosts may be a mount point).
hosts_add() {
  grep -qE "^$1[[:space:]]+$2[[:space:]]" /etc/hosts && return 0
  printf '%s %s %s\n' "$1" "$2" "$HOSTS_MARK" >>/etc/hosts
  created hosts "$2"
}

hosts_remove_ours() {
  local tmp
  grep -qF "$HOSTS_MARK" /etc/hosts || return 0
  tmp=$(mktemp)
  grep -vF "$HOSTS_MARK" /etc/hosts >"$tmp" || true
  cat "$tmp" >/etc/hosts
  rm -f "$tmp"
}

# net_up N: the bridge, N namespaces with their veth pairs and addresses, the hosts entries.
net_up() {
  local n=$1 i ns
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    created bridge "$BRIDGE"
  fi
  ip addr replace "$CTL_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  hosts_add "$CTL_ADDR" "$CTL_NAME"
  for ((i = 1; i <= n; i++)); do
    ns=$NS_PREFIX$i
    if ! ip netns list | grep -qw "^$ns"; then
      ip netns add "$ns"
      created netns "$ns"
    fi
    if ! ip link show "rmv$i" >/dev/null 2>&1; then
      ip link add "rmv$i" type veth peer name "rmp$i"
      ip link set "rmp$i" netns "$ns"
      created veth "rmv$i"
    fi
    ip link set "rmv$i" master "$BRIDGE" up
    ip -n "$ns" addr replace "$SUBNET.$i/24" dev "rmp$i"
    ip -n "$ns" link set "rmp$i" up
    ip -n "$ns" link set lo up
    hosts_add "$SUBNET.$i" "$(node_name "$i")"
  done
}

# net_down: remove, by the list, the namespaces, veths, bridge and hosts lines `net_up` made.
net_down() {
  local kind name
  [[ -f $CREATED ]] || return 0
  while read -r kind name; do
    case $kind in
      netns) ip netns del "$name" 2>/dev/null && say "removed network namespace $name" ;;
      veth) ip link del "$name" 2>/dev/null || true ;;  # usually gone with its namespace
      bridge) ip link del "$name" 2>/dev/null && say "removed bridge $name" ;;
    esac
  done < <(tac "$CREATED")
  hosts_remove_ours
  rm -f "$CREATED"
}

# node_pids NS: pids of processes in network namespace NS (empty if it does not exist).
node_pids() { ip netns pids "$1" 2>/dev/null || true; }

# start_node I: slurmd -N node<I> inside namespace roadmap-node<I>, with hostname node<I>.
start_node() {
  local i=$1 name pidfile pid
  name=$(node_name "$i")
  pidfile="$STATE/run/slurmd-$name.pid"
  rm -f "$pidfile"
  # nsenter, not `ip netns exec`: that one remounts /sys, hiding the cgroup mounts slurmd reads.
  nsenter --net="/run/netns/$NS_PREFIX$i" -- unshare --uts \
    sh -c "hostname $name && exec slurmd -N $name" \
    || die "slurmd of $name did not start (log: $STATE/log/slurmd-$name.log)"
  pid=$(pid_from_file "$pidfile" 20) || die "slurmd of $name wrote no pid file ($pidfile)"
  record "slurmd-$name" "$pid"
}
