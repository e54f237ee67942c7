package io.doppel.dist;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Runs outside programs for the distribution tests: output (stdout and stderr merged) and exit code. */
final class Tool
{
    record Result(List<String> command, int exit, String output)
    {
        /** For assertion messages. */
        String describe()
        {
            return "`" + String.join(" ", command) + "` exited " + exit + ", output:\n" + output;
        }
    }

    private Tool()
    {
    }

    /** Whether {@code tool} is an executable on PATH. */
    static boolean exists(final String tool)
    {
        for (final String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":"))
        {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool)))
            {
                return true;
            }
        }
        return false;
    }

    /** Runs {@code command} with {@code env} added to this JVM's environment; fails after {@code seconds}. */
    static Result run(final int seconds, final Map<String, String> env, final String... command)
    {
        final ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true)
            .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().putAll(env);
        try
        {
            final Process p = pb.start();
            final byte[][] out = new byte[1][];
            final Thread reader = new Thread(() ->
            {
                try
                {
                    out[0] = p.getInputStream().readAllBytes();
                }
                catch (final IOException e)
                {
                    out[0] = ("(reading the output failed: " + e + ")").getBytes(StandardCharsets.UTF_8);
                }
            });
            reader.start();
            if (!p.waitFor(seconds, TimeUnit.SECONDS))
            {
                p.destroyForcibly();
                reader.join(5000);
                throw new AssertionError("`" + String.join(" ", command) + "` did not finish within " + seconds + " s");
            }
            reader.join(5000);
            return new Result(List.of(command), p.exitValue(),
                out[0] == null ? "" : new String(out[0], StandardCharsets.UTF_8));
        }
        catch (final IOException e)
        {
            throw new UncheckedIOException("cannot start " + String.join(" ", command), e);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    static Result run(final int seconds, final String... command)
    {
        return run(seconds, Map.of(), command);
    }
}
