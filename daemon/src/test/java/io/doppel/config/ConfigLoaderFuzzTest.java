package io.doppel.config;

import io.doppel.fuzz.Fuzz;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The config loader against random and mutated TOML: whatever the file holds, the answer is a config or a
 * {@link ConfigException} whose message starts with the file's name, never a NullPointerException, a
 * ClassCastException, a Jackson exception or an InvalidPathException escaping (the daemon would print a
 * stack trace instead of the key at fault). Starts from the fully commented sample config, so mutations
 * reach every key's validation.
 */
class ConfigLoaderFuzzTest
{
    private static final String SOURCE = "fuzz.toml";

    /** Values of every TOML type and the edge cases of each, put in place of a key's value. */
    private static final String[] VALUES = {
        "\"\"", "\"x\"", "0", "-1", "1", "4096", "9223372036854775807", "-9223372036854775808",
        "18446744073709555712", "99999999999999999999999999", "1.5", "-0.0", "1e400", "nan", "inf", "-inf", "true",
        "false", "[]", "[1, \"a\"]", "[[1], [2]]", "{}", "{ a = 1 }", "{ name = \"x\" }", "1979-05-27T07:32:00Z",
        "1979-05-27", "07:32:00", "\"a\\u0000b\"", "\"\\u0000\"", "\"/tmp/a\\u0000b\"", "\"9999999999999999999h\"",
        "\"99999999999999h\"", "\"9999999999999999s\"", "\"153722867280912931m\"", "\"-1s\"", "\"1e3\"", "\"0ms\"",
        "\"99ms\"", "\"100ms\"", "\"9999999999999999999999TiB\"", "\"8388608TiB\"", "\"8388607TiB\"", "\"0B\"",
        "\"1 GB\"", "\"4KiB\"", "\"64KiB\"", "\"1MiB\"", "\"16GiB\"", "\"-4KiB\"", "\"primary\"", "\"standby\"",
        "\"PRIMARY\"", "\"sync\"", "\"none\"", "\"zstd\"", "\"LZ4\"", "\"unix:/tmp/x.sock\"", "\"unix:\"", "\"unix:x\"",
        "\"10809\"", "\"99999\"", "\"[::1]:7788\"", "\"[::1]\"", "\":1\"", "\"host:\"", "\"host:0\"",
        "\"host:65536\"", "\"host:-1\"", "\"host:+80\"", "\"host: 80\"", "\"a:b:c:7788\"", "\"\u00e9t\u00e9:1\"",
        "\"beta\"", "\"alpha\"", "\"vm1\"", "\"" + "n".repeat(300) + "\"", "'literal'", "'''multi\nline'''",
        "\"\"\"multi\nline\"\"\"", "0x10", "0o17", "0b101", "1_000", "+7", "\"discard-least-changes\"",
        "\"discard_younger_primary\"", "\"debug\"", "\"DEBUG\"",
    };

    private static final String[] KEYS = {
        "name", "listen", "admin", "data-dir", "heartbeat-interval", "heartbeat-timeout", "log-level", "address",
        "path", "size", "role", "peer", "block-size", "compression", "replication-log-size", "nbd", "ack",
        "after-split-brain", "nbd-clients", "peer-links", "connection-rate", "nbd-request", "peer-in-flight",
        "unknown-key", "node", "volume", "limits", "\"quoted key\"", "a.b", "",
    };

    private static final String[] HEADERS = {
        "[node]", "[[node]]", "[[peer]]", "[peer]", "[[volume]]", "[volume]", "[limits]", "[[limits]]",
        "[node.extra]", "[[volume.sub]]", "[x]", "[]", "[[]]", "[node", "[\"node\"]", "[ limits ]",
    };

    /** The sample config with every key, as shipped; falls back to a small one when run outside the repo. */
    private static String sample() throws IOException
    {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent())
        {
            final Path file = dir.resolve("systemd/doppel.toml");
            if (Files.isRegularFile(file))
            {
                // the sample names a PSK file at its installed place: point it at a real private key
                return Files.readString(file).replace("/etc/doppel/peer-beta.psk", pskFile().toString());
            }
        }
        throw new IOException("systemd/doppel.toml not found above " + Path.of("").toAbsolutePath());
    }

    private static Path psk;

    private static synchronized Path pskFile() throws IOException
    {
        if (psk == null)
        {
            psk = Files.createTempFile("doppel-fuzz-", ".psk");
            psk.toFile().deleteOnExit();
            Files.writeString(psk, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
            Files.setPosixFilePermissions(psk, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        }
        return psk;
    }

    /** The sample's lines without comments and blank lines: every line a mutation touches matters. */
    private static List<String> seedLines() throws IOException
    {
        final List<String> lines = new ArrayList<>();
        for (final String line : sample().split("\n"))
        {
            if (!line.isBlank() && !line.startsWith("#"))
            {
                lines.add(line);
            }
        }
        return lines;
    }

    @Test
    void theSeedItselfIsAValidConfig() throws Exception
    {
        final DoppelConfig config = ConfigLoader.parse(String.join("\n", seedLines()), SOURCE);
        assertThat(config.volumes()).isNotEmpty();
        assertThat(config.peers()).isNotEmpty();
    }

    @Test
    void mutatedSampleConfigGivesAConfigOrAConfigException() throws Exception
    {
        final List<String> seed = seedLines();
        final int cases = Fuzz.iterations(3000);
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED);
        int refused = 0;
        final java.util.Map<String, String> failures = new java.util.LinkedHashMap<>();
        for (int i = 0; i < cases; i++)
        {
            final List<String> lines = new ArrayList<>(seed);
            final int mutations = 1 + random.nextInt(4);
            for (int m = 0; m < mutations; m++)
            {
                mutate(random, lines);
            }
            try
            {
                if (!check("case " + i + " (seed " + Fuzz.SEED + ")", String.join("\n", lines)))
                {
                    refused++;
                }
            }
            catch (final AssertionError e)
            {
                final Throwable cause = e.getCause() == null ? e : e.getCause();
                final String kind = cause.getClass().getName() + " at "
                    + (cause.getStackTrace().length > 0 ? cause.getStackTrace()[0] : "?");
                failures.putIfAbsent(kind, e.getMessage());
            }
        }
        assertThat(failures).as("distinct failures").isEmpty();
        assertThat(refused).as("most mutations are refused (the fuzzer reaches the validation)")
            .isGreaterThan(cases / 3);
    }

    @Test
    void randomTextGivesAConfigException()
    {
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED + 1);
        final String alphabet = "[]{}=\"'#.,\n\t \\abcnlu0123456789-_:+eE";
        for (int i = 0; i < Fuzz.iterations(1000); i++)
        {
            final StringBuilder text = new StringBuilder();
            final int n = random.nextInt(200);
            final boolean anyChar = random.nextBoolean();
            for (int k = 0; k < n; k++)
            {
                text.append(anyChar ? (char)random.nextInt(0x3000) : alphabet.charAt(random.nextInt(alphabet.length())));
            }
            assertThat(check("random text " + i + " (seed " + (Fuzz.SEED + 1) + ")", text.toString()))
                .as("random text is never a complete config").isFalse();
        }
    }

    @Test
    void pathologicalShapesAreRefusedWithAConfigException()
    {
        final String node = "[node]\nname = \"a\"\n";
        final List<String> inputs = new ArrayList<>(Arrays.asList(
            "",
            "\u0000",
            "\ufeff",
            "node = 1",
            "node = \"x\"",
            "node = []",
            "peer = 1\n" + node,
            "peer = [1, 2]\n" + node,
            "volume = {}\n" + node,
            "limits = 5\n" + node,
            "limits = []\n" + node,
            "[node]\nname = \"a\"\n[node.name]\n",
            node + "data-dir = \"/tmp/a\\u0000b\"",
            node + "[[volume]]\nname = \"v\"\npath = \"/tmp/v\\u0000.img\"\nrole = \"primary\"\n",
            node + "[[peer]]\nname = \"b\"\naddress = \"b:1\"\n[[volume]]\nname = \"v\"\npath = \"/v\"\nrole = \"primary\""
                + "\nsize = 18446744073709555712\n",
            node + "[[peer]]\nname = \"b\"\naddress = \"b:1\"\n[[volume]]\nname = \"v\"\npath = \"/v\"\nrole = \"primary\""
                + "\nblock-size = 18446744073709555712\n",
            node + "[limits]\nnbd-clients = 18446744073709551617\n",
            node + "[limits]\nnbd-request = 18446744073709551616\n",
            node + "heartbeat-interval = \"9999999999999999999h\"\n",
            node + "heartbeat-interval = \"9999999999999999h\"\n",
            node + "heartbeat-timeout = \"9223372036854775807ms\"\nheartbeat-interval = \"4611686018427387904ms\"\n",
            "a = " + "[".repeat(5000) + "]".repeat(5000),
            "a = " + "{ b = ".repeat(3000) + "1" + " }".repeat(3000),
            "[" + "a.".repeat(5000) + "a]",
            "a = \"" + "\\u00e9".repeat(10000) + "\"",
            "a = 1\n".repeat(2) + node));
        for (int i = 0; i < inputs.size(); i++)
        {
            assertThat(check("pathological input " + i, inputs.get(i))).as("pathological input %d is refused:\n%s", i,
                shorten(inputs.get(i))).isFalse();
        }
    }

    /**
     * Parses {@code toml}; true when it is accepted, false when refused with a proper ConfigException. Fails
     * on anything else, quoting the input.
     */
    private static boolean check(final String what, final String toml)
    {
        try
        {
            final DoppelConfig config = ConfigLoader.parse(toml, SOURCE);
            assertThat(config.node()).as("%s: a config without [node]", what).isNotNull();
            assertThat(config.node().heartbeatIntervalMillis()).as("%s: heartbeat interval", what).isPositive();
            assertThat(config.node().heartbeatTimeoutMillis()).as("%s: heartbeat timeout", what).isPositive();
            for (final VolumeConfig v : config.volumes())
            {
                assertThat(v.size()).as("%s: volume size", what).isNotNegative();
                assertThat(v.blockSize()).as("%s: block size", what).isBetween(VolumeConfig.MIN_BLOCK_SIZE,
                    VolumeConfig.MAX_BLOCK_SIZE);
            }
            return true;
        }
        catch (final ConfigException e)
        {
            assertThat(e.getMessage()).as("%s: message of the refusal", what).startsWith(SOURCE + ": ")
                .hasSizeGreaterThan(SOURCE.length() + 10);
            return false;
        }
        catch (final Throwable e)
        {
            throw new AssertionError(what + ": " + e + " escaped the loader (expected ConfigException) for input:\n"
                + shorten(toml), e);
        }
    }

    private static String shorten(final String text)
    {
        return text.length() <= 2000 ? text : text.substring(0, 1000) + "\n...\n" + text.substring(text.length() - 500);
    }

    private static void mutate(final SplittableRandom random, final List<String> lines)
    {
        if (lines.isEmpty())
        {
            lines.add(pick(random, HEADERS));
            return;
        }
        final int at = random.nextInt(lines.size());
        final String line = lines.get(at);
        final int eq = line.indexOf('=');
        switch (random.nextInt(9))
        {
            case 0: // another value, of any type
                if (eq > 0)
                {
                    lines.set(at, line.substring(0, eq + 1) + " " + pick(random, VALUES));
                }
                break;
            case 1: // another key, known or not
                if (eq > 0)
                {
                    lines.set(at, pick(random, KEYS) + " =" + line.substring(eq + 1));
                }
                break;
            case 2:
                lines.remove(at);
                break;
            case 3:
                lines.add(at, line);
                break;
            case 4: // a table header where it does not belong
                lines.add(at, pick(random, HEADERS));
                break;
            case 5: // a new key line
                lines.add(at, pick(random, KEYS) + " = " + pick(random, VALUES));
                break;
            case 6: // one character changed
                if (!line.isEmpty())
                {
                    final int c = random.nextInt(line.length());
                    final char ch = (char)(random.nextBoolean() ? 32 + random.nextInt(95) : random.nextInt(0x2000));
                    lines.set(at, line.substring(0, c) + ch + line.substring(c + 1));
                }
                break;
            case 7: // cut short
                lines.set(at, line.substring(0, random.nextInt(line.length() + 1)));
                break;
            default: // two lines swapped
                final int other = random.nextInt(lines.size());
                lines.set(at, lines.get(other));
                lines.set(other, line);
        }
    }

    private static String pick(final SplittableRandom random, final String[] values)
    {
        return values[random.nextInt(values.length)];
    }
}
