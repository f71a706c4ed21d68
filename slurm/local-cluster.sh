#!/usr/bin/env bash
# A Slurm on this machine, for the sweep's tests and CI: slurm/local-cluster.sh up [--nodes N]|down|status
#
#   up      install Debian's packages if missing (munge, slurmctld, slurmd, slurm-client, slurmdbd,
#           mariadb-server), write the configs, start munged, MariaDB, slurmdbd, slurmctld and
#           slurmd, wait until the nodes are idle. Idempotent: what already answers is left alone.
#           One node, `localhost`, by default; with --nodes N (2 or more), nodes node1 .. nodeN,
#           each slurmd in its own network and UTS namespace on a private bridge
#           (slurm/local-nodes.sh), with /etc/hosts entries for their names.
#   down    cancel the jobs still queued, then stop, by recorded pid, only the daemons `up` started,
#           and remove the namespaces, bridge and hosts entries `up` made.
#   status  one line per daemon, the partitions and the queue; exit 0 when all answer, else 3.
#
# Runtime state (logs, pids, MariaDB data, Slurm state) lives under $ROADMAP_SLURM_DIR
# (default /var/lib/roadmap-slurm); configs go to /etc/slurm/{slurm,slurmdbd}.conf, which are
# only overwritten when this script wrote them. Needs root (no systemd: daemons started by hand).
# The profile that targets this cluster is slurm/local.toml. What is known about these machines:
# ../shared/notes/slurm-single-node.md.
set -euo pipefail

STATE="${ROADMAP_SLURM_DIR:-/var/lib/roadmap-slurm}"
CLUSTER="roadmap"
MARK="# Written by convnext-roadmap slurm/local-cluster.sh; safe to overwrite with it."
CONF=/etc/slurm/slurm.conf
DBDCONF=/etc/slurm/slurmdbd.conf
SOCKET=/run/mysqld/mysqld.sock
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stopped in reverse
T0=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm/local-nodes.sh
source "$HERE/local-nodes.sh"
NODES=1  # `up --nodes N`; down and status read what up recorded in $STATE/nodes

say() { printf '[local-cluster %3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() {
  printf 'local-cluster: error: %s\n' "$*" >&2
  exit 1
}

# ---- processes -------------------------------------------------------------------------------

# alive NAME PID: PID runs a process called NAME (a zombie counts as gone).
alive() {
  local name=$1 pid=$2 comm state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [[ $comm == "$name" && $state != Z ]]
}

recorded() { cat "$STATE/pids/$1.pid" 2>/dev/null || true; }
record() { echo "$2" >"$STATE/pids/$1.pid"; }

# answers NAME: the service NAME stands for responds (whoever started it).
answers() {
  case $1 in
    munged) munge -n 2>/dev/null | unmunge >/dev/null 2>&1 ;;
    mariadbd) mariadb --socket="$SOCKET" -e 'SELECT 1' >/dev/null 2>&1 ;;
    slurmdbd) timeout 10 sacctmgr -n show cluster >/dev/null 2>&1 ;;
    slurmctld) timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' ;;
    slurmd)
      local s name
      for name in $(node_names); do
        s=$(timeout 10 sinfo -h -n "$name" -o %T 2>/dev/null | head -1)
        [[ $s =~ ^(idle|mixed|allocated|completing) ]] || return 1
      done
      ;;
  esac
}

# node_names: the compute nodes of this cluster, one per word.
node_names() {
  local i
  if ((NODES == 1)); then
    echo localhost
    return
  fi
  for ((i = 1; i <= NODES; i++)); do node_name "$i"; done
}

# wait_for NAME SECONDS LOG: poll `answers NAME`; on time-out show the log's tail and fail.
wait_for() {
  local name=$1 limit=$2 log=${3:-} i
  for ((i = 0; i < limit * 2; i++)); do
    answers "$name" && return 0
    sleep 0.5
  done
  [[ -n $log && -r $log ]] && tail -n 20 "$log" >&2
  die "$name did not answer within ${limit}s${log:+ (log: $log)}"
}

# pid_from_file FILE SECONDS: the pid a daemon wrote, once it is there.
pid_from_file() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    [[ -s $1 ]] && {
      tr -d ' \n' <"$1"
      return 0
    }
    sleep 0.25
  done
  return 1
}

# ---- install and configure -------------------------------------------------------------------

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/log/apt.log" 2>&1; then
    say "apt-get install failed; running apt-get update first"
    apt-get update -q >>"$STATE/log/apt.log" 2>&1 || die "apt-get update failed (see $STATE/log/apt.log)"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/log/apt.log" 2>&1 \
      || die "apt-get install ${missing[*]} failed (see $STATE/log/apt.log)"
  fi
}

# ours FILE: FILE is absent or was written by this script.
ours() { [[ ! -e $1 ]] || head -n 1 "$1" | grep -qxF "$MARK"; }

write_configs() {
  ours "$CONF" || die "$CONF exists and was not written by this script; not touching it"
  ours "$DBDCONF" || die "$DBDCONF exists and was not written by this script; not touching it"
  mkdir -p /etc/slurm
  # The node as slurmd sees it (CPUs, topology, RealMemory), renamed to localhost (or, with
  # several nodes, each of them: every namespace node reports the whole machine).
  local node ctl nodes addrs
  node=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]* //')
  [[ $node == *CPUs=* ]] || die "slurmd -C gave no node description: $node"
  ctl=localhost nodes=localhost addrs=127.0.0.1
  if ((NODES > 1)); then
    # The namespaces reach the controller on the bridge; its name must be this host's.
    ctl="$(hostname -s)($CTL_ADDR)" nodes="node[1-$NODES]" addrs="$SUBNET.[1-$NODES]"
  fi
  cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$ctl
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd/%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
KillWait=5
# A node whose slurmd stops answering is DOWN after this long (its jobs requeue); default 300 s.
SlurmdTimeout=20
MinJobAge=300
InactiveLimit=0
# A requeued job otherwise waits 120 s plus up to 60 s before it can start again.
SchedulerParameters=bf_interval=1,sched_interval=2
# Preemption: a job in partition high requeues jobs of debug, which get USR2 first.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
JobRequeue=1
# submitit reads job state only through sacct, which needs accounting.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=$nodes NodeAddr=$addrs $node State=UNKNOWN
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=20
PartitionName=high Nodes=$nodes MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
  mv "$CONF.tmp" "$CONF"
  cat >"$DBDCONF.tmp" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm "$DBDCONF.tmp"
  chmod 0600 "$DBDCONF.tmp"
  mv "$DBDCONF.tmp" "$DBDCONF"
}

prepare_dirs() {
  mkdir -p "$STATE"/{pids,log,run,slurmctld,slurmd,mysql}
  chmod 0755 "$STATE" "$STATE"/{log,run}
  chown slurm:slurm "$STATE"/{run,slurmctld}
  chown mysql:mysql "$STATE/mysql"
  touch "$STATE"/log/{slurmctld,slurmdbd,slurmd,mariadb}.log
  chown slurm:slurm "$STATE"/log/{slurmctld,slurmdbd}.log
  chown mysql:mysql "$STATE/log/mariadb.log"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o mysql -g mysql -m 0755 /run/mysqld
}

# ---- daemons ---------------------------------------------------------------------------------

start_munged() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  record munged "$(pid_from_file /run/munge/munged.pid 10)"
  wait_for munged 20 /var/log/munge/munged.log
}

start_mariadbd() {
  if [[ ! -d $STATE/mysql/mysql ]]; then
    say "initialising MariaDB in $STATE/mysql"
    mariadb-install-db --user=mysql --datadir="$STATE/mysql" --skip-test-db \
      --auth-root-authentication-method=socket >>"$STATE/log/mariadb.log" 2>&1 \
      || die "mariadb-install-db failed (see $STATE/log/mariadb.log)"
  fi
  rm -f "$STATE/mysql/mariadbd.pid"
  setsid nohup mariadbd --user=mysql --datadir="$STATE/mysql" --socket="$SOCKET" \
    --skip-networking --pid-file="$STATE/mysql/mariadbd.pid" \
    --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  record mariadbd "$!"
  wait_for mariadbd 60 "$STATE/log/mariadb.log"
  mariadb --socket="$SOCKET" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
  rm -f "$STATE/run/slurmdbd.pid"
  slurmdbd
  record slurmdbd "$(pid_from_file "$STATE/run/slurmdbd.pid" 20)"
  wait_for slurmdbd 60 "$STATE/log/slurmdbd.log"
}

start_slurmctld() {
  if ! sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  rm -f "$STATE/run/slurmctld.pid"
  slurmctld
  record slurmctld "$(pid_from_file "$STATE/run/slurmctld.pid" 20)"
  wait_for slurmctld 60 "$STATE/log/slurmctld.log"
}

# up_slurmds: one slurmd per node (kept if the one recorded runs), then wait until all are idle.
up_slurmds() {
  local i name pid s
  i=0
  for name in $(node_names); do
    i=$((i + 1))
    mkdir -p "$STATE/slurmd/$name"
    pid=$(recorded "slurmd-$name")
    if [[ -n $pid ]] && alive slurmd "$pid"; then
      say "slurmd of $name already running (pid $pid)"
      continue
    fi
    rm -f "$STATE/pids/slurmd-$name.pid" "$STATE/run/slurmd-$name.pid"
    if ((NODES == 1)); then
      slurmd -N "$name"
      record "slurmd-$name" "$(pid_from_file "$STATE/run/slurmd-$name.pid" 20)"
    else
      start_node "$i"
    fi
    say "slurmd of $name started (pid $(recorded "slurmd-$name"))"
  done
  for ((i = 0; i < 120; i++)); do
    answers slurmd && return 0
    for name in $(node_names); do
      s=$(sinfo -h -n "$name" -o %T 2>/dev/null | head -1 || true)
      if [[ $s =~ ^(down|drain|drained|inval|unknown) ]]; then
        scontrol update NodeName="$name" State=RESUME >/dev/null 2>&1 || true
      fi
    done
    sleep 0.5
  done
  tail -n 20 "$STATE"/log/slurmd-*.log >&2
  die "nodes $(node_names | tr '\n' ' ')not idle after 60s ($(sinfo -h -N -o '%N %T' | tr '\n' ' '))"
}

cmd_up() {
  [[ $(id -u) == 0 ]] || die "needs root (installs packages, starts daemons)"
  mkdir -p "$STATE/pids" "$STATE/log"
  local was d pid
  was=$(cat "$STATE/nodes" 2>/dev/null || echo "$NODES")
  if [[ $was != "$NODES" ]] && [[ -n $(recorded slurmctld) ]] && alive slurmctld "$(recorded slurmctld)"; then
    die "the cluster is up with $was node(s); run '$0 down' before 'up --nodes $NODES'"
  fi
  echo "$NODES" >"$STATE/nodes"
  install_packages
  prepare_dirs
  write_configs
  ((NODES == 1)) || net_up "$NODES"
  for d in "${DAEMONS[@]}"; do
    if [[ $d == slurmd ]]; then
      up_slurmds
      continue
    fi
    pid=$(recorded "$d")
    if [[ -n $pid ]] && alive "$d" "$pid"; then
      say "$d already running (pid $pid)"
      wait_for "$d" 60 "$STATE/log/$d.log"
      continue
    fi
    rm -f "$STATE/pids/$d.pid"
    if answers "$d"; then
      say "$d already answers (not started by this script; left alone)"
      continue
    fi
    "start_$d"
    say "$d started (pid $(recorded "$d"))"
  done
  say "cluster up: $(sinfo -h -o '%P %T %C' | tr '\n' ' ')(state in $STATE)"
}

# stop NAME [COMM]: TERM the pid recorded as NAME (a process called COMM, default NAME), KILL it
# after 20 s; forget it.
stop() {
  local name=$1 comm=${2:-$1} pid i
  pid=$(recorded "$name")
  [[ -n $pid ]] || return 0
  if alive "$comm" "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 80; i++)); do
      alive "$comm" "$pid" || break
      sleep 0.25
    done
    if alive "$comm" "$pid"; then
      say "$name (pid $pid) ignored TERM for 20s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "$name stopped (pid $pid)"
  else
    say "$name (pid $pid) was not running"
  fi
  rm -f "$STATE/pids/$name.pid"
}

cmd_down() {
  local ctld jobs i
  ctld=$(recorded slurmctld)
  if [[ -n $ctld ]] && alive slurmctld "$ctld" && answers slurmctld; then
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
      say "cancelling jobs still queued: $jobs"
      # shellcheck disable=SC2086  # one word per job id
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 60; i++)); do
        [[ -z $(squeue -h -o %A 2>/dev/null) ]] && break
        sleep 0.5
      done
    fi
  fi
  local name
  for name in $(node_names); do
    stop "slurmd-$name" slurmd
  done
  stop slurmd  # a single-node cluster started before nodes had names here
  for ((i = ${#DAEMONS[@]} - 2; i >= 0; i--)); do
    stop "${DAEMONS[i]}"
  done
  # Stale pid files would make a later `apt-get purge` fail in the packages' prerm scripts.
  rm -f "$STATE"/run/*.pid "$STATE/mysql/mariadbd.pid"
  net_down
  say "down"
}

cmd_status() {
  local d pid ok=0 how name
  for d in "${DAEMONS[@]}"; do
    if [[ $d == slurmd ]]; then
      for name in $(node_names); do
        pid=$(recorded "slurmd-$name")
        how="not started by up"
        [[ -n $pid ]] && alive slurmd "$pid" && how="pid $pid, started by up"
        printf '%-10s %-9s (%s)\n' "slurmd" "$name" "$how"
      done
    fi
    pid=$(recorded "$d")
    if [[ $d == slurmd ]]; then
      how="every node idle or busy"
    elif [[ -n $pid ]] && alive "$d" "$pid"; then
      how="pid $pid, started by up"
    else
      how="not started by up"
    fi
    if answers "$d"; then
      printf '%-10s answers   (%s)\n' "$d" "$how"
    else
      printf '%-10s DOWN      (%s)\n' "$d" "$how"
      ok=3
    fi
  done
  if answers slurmctld; then
    sinfo -o '%P %a %T %C %m' || true
    printf 'jobs queued or running: %s\n' "$(squeue -h 2>/dev/null | wc -l)"
  fi
  echo "state: $STATE"
  return "$ok"
}

usage() {
  echo "usage: $0 up [--nodes N] | down | status" >&2
  exit 2
}

command=${1:-}
shift || true
if [[ $command == up && ${1:-} == --nodes ]]; then
  [[ ${2:-} =~ ^[1-9][0-9]?$ ]] || die "--nodes needs a node count from 1 to 99, got '${2:-}'"
  NODES=$2
  shift 2
fi
(($# == 0)) || usage
if [[ $command != up ]]; then
  NODES=$(cat "$STATE/nodes" 2>/dev/null || echo 1)
fi
case $command in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
