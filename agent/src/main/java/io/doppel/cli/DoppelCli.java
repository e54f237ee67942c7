package io.doppel.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code doppel} command: the daemon itself and the operator's tools that talk to a running one.
 * Exit codes: 0 success, 1 the asked-for check failed (demo copy differs, daemon unreachable),
 * 2 bad usage or config, 3 the daemon could not start, 4 a verb was not allowed (no readable admin token,
 * or the daemon refused it).
 */
@Command(name = "doppel", mixinStandardHelpOptions = true, version = "doppel 0.1.0",
    description = "Block-level replication: a live, crash-consistent twin of a disk image on a standby host.",
    subcommands = {
        DaemonCommand.class,
        StatusCommand.class,
        VerbCommands.Verify.class,
        VerbCommands.Resync.class,
        VerbCommands.Pause.class,
        VerbCommands.Resume.class,
        VerbCommands.Promote.class,
        VerbCommands.Demote.class,
        ConflictsCommand.class,
        ReloadCommand.class,
        DemoCommand.class,
        ImageCommands.MakeImage.class,
        ImageCommands.MutateImage.class,
        ImageCommands.HashImage.class,
        CommandLine.HelpCommand.class
    },
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {
        "0:success",
        "1:the check failed (copy differs, daemon unreachable or refused, timeout)",
        "2:bad usage or config",
        "3:the daemon could not start (volume, port, disk)",
        "4:not allowed: a verb that changes state (promote, demote, pause, resume, resync, verify, reload) found no"
            + " readable admin token, or the daemon refused it; run it as root or as the daemon's user"
    })
public final class DoppelCli implements Runnable
{
    /** A verb that changes state was not allowed: the admin token was unreadable, or refused by the daemon. */
    public static final int EXIT_NOT_ALLOWED = 4;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(final String[] args)
    {
        System.exit(execute(args));
    }

    public static int execute(final String... args)
    {
        final CommandLine cli = new CommandLine(new DoppelCli());
        cli.setExitCodeExceptionMapper(e -> 2);
        cli.setParameterExceptionHandler((ex, a) ->
        {
            ex.getCommandLine().getErr().println("doppel: " + ex.getMessage());
            ex.getCommandLine().getErr().println("try: " + ex.getCommandLine().getCommandSpec().qualifiedName()
                + " --help");
            return 2;
        });
        return cli.execute(args);
    }

    @Override
    public void run()
    {
        spec.commandLine().usage(System.out);
    }
}
