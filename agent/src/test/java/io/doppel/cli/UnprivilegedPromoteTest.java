package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static io.doppel.cli.CliRun.freePort;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Issue 7's "an unprivileged user cannot promote", for real: a daemon runs as root with its admin token
 * file at mode 0600 (in directories anyone may enter, so only the file's mode keeps it secret). As the
 * user nobody ({@code setpriv --reuid=nobody}, else {@code runuser -u nobody}) the real CLI, in its own
 * JVM, cannot read the token and exits 4 naming the file, and curl without a token gets 401; the volume
 * stays standby. The same CLI command run as root promotes it.
 *
 * <p>Needs root, and setpriv or runuser; skipped, saying so, otherwise (CI runs as root). The classes
 * and jars the CLI needs are copied to a directory nobody can read, since ~/.m2 under /root is not.
 */
class UnprivilegedPromoteTest
{
    @TempDir
    Path dir;

    @Test
    void nobodyCannotPromoteButRootCan() throws Exception
    {
        Assumptions.assumeTrue("0".equals(output(List.of("id", "-u")).strip()),
            "skipped: needs root to run a command as another user (CI runs as root); this is uid "
                + output(List.of("id", "-u")).strip());
        final List<String> asNobody = asNobody();
        Assumptions.assumeTrue(asNobody != null, "skipped: neither setpriv nor runuser is installed (util-linux)");
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));

        final Path data = Files.createDirectories(dir.resolve("data"));
        Files.setPosixFilePermissions(data, PosixFilePermissions.fromString("rwxr-xr-x"));
        final int admin = freePort();
        final Path config = dir.resolve("beta.toml");
        Files.writeString(config, String.join("\n",
            "[node]", "name = \"beta\"", "listen = \"127.0.0.1:" + freePort() + "\"",
            "admin = \"127.0.0.1:" + admin + "\"", "data-dir = \"" + data + "\"",
            "[[peer]]", "name = \"alpha\"", "address = \"127.0.0.1:" + freePort() + "\"",
            "[[volume]]", "name = \"vm1\"", "path = \"" + data.resolve("vm1.img") + "\"", "size = \"4MiB\"",
            "role = \"standby\"", ""));
        Files.setPosixFilePermissions(config, PosixFilePermissions.fromString("rw-r--r--"));
        final List<String> java = javaCommand();
        final Path token = data.resolve("admin.token");

        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(config), config))
        {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(token))).isEqualTo("rw-------");
            assertThat(Files.getOwner(token).getName()).isEqualTo("root");
            // (--force: a new standby copy is not known consistent; what is tested here is who may ask)
            final List<String> promote = new ArrayList<>(java);
            promote.addAll(List.of("promote", "vm1", "--force", "--config", config.toString()));

            final Run cli = run(concat(asNobody, promote));
            assertThat(cli.code).as("the CLI as nobody: " + cli).isEqualTo(DoppelCli.EXIT_NOT_ALLOWED);
            assertThat(cli.err).contains("cannot read the admin token from " + token).contains("permission denied")
                .contains("run this as root");
            assertThat(beta.standby("vm1")).as("still standby").isNotNull();
            assertThat(beta.primary("vm1")).isNull();

            final Run curl = run(concat(asNobody, List.of("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                "-X", "POST", "-H", "X-Doppel-Verb: 1", "-H", "Authorization: Bearer $(cat " + token + ")",
                "http://127.0.0.1:" + admin + "/volumes/vm1/promote?force=true")));
            assertThat(curl.out).as("curl as nobody, sending the token it could not read (empty): " + curl)
                .isEqualTo("401");
            final Run bare = run(concat(asNobody, List.of("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                "-X", "POST", "-H", "X-Doppel-Verb: 1", "http://127.0.0.1:" + admin + "/volumes/vm1/promote?force=true")));
            assertThat(bare.out).as("curl as nobody without a token: " + bare).isEqualTo("401");
            final Run readToken = run(concat(asNobody, List.of("cat", token.toString())));
            assertThat(readToken.code).as("nobody reads the 0600 token file: " + readToken).isNotZero();
            assertThat(beta.standby("vm1")).as("still standby after the refused requests").isNotNull();
            final Run metrics = run(List.of("curl", "-s", "http://127.0.0.1:" + admin + "/metrics"));
            assertThat(metrics.out).as("both curl requests counted")
                .containsPattern("doppel_admin_refused_total\\{node=\"beta\",reason=\"missing-token\",?\\} 2\\.0");

            final Run root = run(promote);
            assertThat(root.code).as("the same CLI command as root: " + root).isZero();
            assertThat(root.out).contains("vm1: promoted to primary");
            assertThat(beta.primary("vm1")).as("promoted").isNotNull();
        }
    }

    /** The prefix that runs a command as nobody, or null when neither tool is there. */
    private static List<String> asNobody() throws Exception
    {
        if (run(List.of("sh", "-c", "command -v setpriv")).code == 0)
        {
            final String gid = output(List.of("id", "-g", "nobody")).strip();
            return List.of("setpriv", "--reuid=nobody", "--regid=" + gid, "--clear-groups", "--");
        }
        if (run(List.of("sh", "-c", "command -v runuser")).code == 0)
        {
            return List.of("runuser", "-u", "nobody", "--");
        }
        return null;
    }

    /**
     * {@code java -cp COPY io.doppel.cli.DoppelCli}, COPY holding this JVM's class path copied where any user
     * may read it (the CLI's own classes, the daemon's and their jars).
     */
    private List<String> javaCommand() throws Exception
    {
        final Path copy = Files.createDirectories(dir.resolve("classpath"));
        final List<String> entries = new ArrayList<>();
        int i = 0;
        for (final String entry : System.getProperty("java.class.path").split(File.pathSeparator))
        {
            final Path from = Path.of(entry);
            if (!Files.exists(from))
            {
                continue;
            }
            final Path to = copy.resolve(i++ + "-" + from.getFileName());
            if (Files.isDirectory(from))
            {
                try (Stream<Path> files = Files.walk(from))
                {
                    for (final Path f : (Iterable<Path>)files::iterator)
                    {
                        final Path target = to.resolve(from.relativize(f).toString());
                        if (Files.isDirectory(f))
                        {
                            Files.createDirectories(target);
                        }
                        else
                        {
                            Files.copy(f, target, StandardCopyOption.REPLACE_EXISTING);
                        }
                    }
                }
            }
            else
            {
                Files.copy(from, to);
            }
            entries.add(to.toString());
        }
        assertThat(run(List.of("chmod", "-R", "a+rX", copy.toString())).code).isZero();
        final Path tmp = Files.createDirectories(dir.resolve("jvm-tmp"));
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString("rwxrwxrwx"));
        final Path javaBin = Path.of(System.getProperty("java.home"), "bin", "java");
        return List.of(javaBin.toString(), "-Xmx128m", "-Duser.home=" + tmp, "-Djava.io.tmpdir=" + tmp,
            "-cp", String.join(File.pathSeparator, entries), DoppelCli.class.getName());
    }

    private static List<String> concat(final List<String> a, final List<String> b)
    {
        final List<String> all = new ArrayList<>(a);
        if (b.get(0).equals("curl") && b.stream().anyMatch(s -> s.contains("$(")))
        {
            // The token is read by the shell running as nobody, as a user would try it.
            all.addAll(List.of("sh", "-c", String.join(" ", b.stream().map(UnprivilegedPromoteTest::quote).toList())));
            return all;
        }
        all.addAll(b);
        return all;
    }

    /** Single-quotes a word for sh, except the one holding $(...), which is double-quoted so it expands. */
    private static String quote(final String word)
    {
        return word.contains("$(") ? "\"" + word + "\"" : "'" + word.replace("'", "'\\''") + "'";
    }

    private record Run(int code, String out, String err)
    {
        @Override
        public String toString()
        {
            return "exit " + code + ", stdout: " + out + ", stderr: " + err;
        }
    }

    private static String output(final List<String> command) throws Exception
    {
        return run(command).out;
    }

    private static Run run(final List<String> command) throws Exception
    {
        final Path out = Files.createTempFile("doppel-run", ".out");
        final Path err = Files.createTempFile("doppel-run", ".err");
        try
        {
            final Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            if (!p.waitFor(60, TimeUnit.SECONDS))
            {
                p.destroyForcibly();
                throw new AssertionError("timed out after 60 s: " + command);
            }
            return new Run(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
        }
        finally
        {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
