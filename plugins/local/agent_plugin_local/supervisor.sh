# Runs one workload and records its exit code: sh supervisor.sh RUN_DIR [--no-pwd] -- ARGV...
#
# The agent starts this in a session of its own with stdout and stderr going to the run
# directory's output.log. It is a POSIX shell script, not Python, because it starts in about a
# millisecond: a Python supervisor cost some 40 ms of CPU before each workload started, which
# capped a burst of short runs at a few dozen per second. Because the exit code lands in a file,
# a restarted agent (or one that was SIGKILLed meanwhile) still learns how the workload ended.
#
# ARGV[0] is an absolute path (the agent resolved it), so the shell never runs a builtin of its
# own instead of the program. --no-pwd: the agent gave no PWD, so none is passed on (the shell
# would otherwise export one of its own).
run_dir=$1
shift
if [ "$1" = --no-pwd ]; then
    unset PWD
    shift
fi
[ "$1" = -- ] && shift
# SIGTERM to the process group reaches the workload too; the supervisor outlives it so it can
# write down how it ended. A trapped (not ignored) signal is reset in the child on exec, and
# the trap runs only once the workload has ended.
trap : TERM INT
"$@"
code=$?  # 128+N when a signal N ended it: the shell's convention
# One small write: a reader sees the file empty (and then finds this process alive, or gone
# with the file complete) or whole, never a part of the number.
printf '%s' "$code" > "$run_dir/exit_code"
