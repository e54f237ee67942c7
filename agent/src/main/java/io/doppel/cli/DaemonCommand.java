package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DaemonMain;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code doppel daemon}: the service in the foreground (what systemd runs). */
@Command(name = "daemon", mixinStandardHelpOptions = true,
    description = "Run the doppel service in the foreground until SIGTERM.")
final class DaemonCommand implements Callable<Integer>
{
    @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "config file (default: ${DEFAULT-VALUE})",
        defaultValue = ConfigLoader.DEFAULT_PATH)
    Path config;

    @Override
    public Integer call()
    {
        return DaemonMain.run(config);
    }
}
