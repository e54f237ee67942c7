package io.doppel.bench;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The CI smoke run: starts the built uber-jar ({@code java -jar target/benchmarks.jar}) the way a user
 * does, runs every benchmark once, briefly (no fork, no warm-up, one 100 ms iteration, each parameter
 * pinned to one small value), and checks that every benchmark the jar lists produced a positive score.
 * It proves the benchmarks start and run, not how fast they are (the full runs are not tests).
 */
class BenchmarksSmokeIT
{
    private static final Path JAR = Paths.get(System.getProperty("doppel.bench.jar", "target/benchmarks.jar"));

    @Test
    void everyBenchmarkInTheJarRunsAndScores() throws Exception
    {
        assertThat(JAR).as("the benchmarks jar (mvn package builds it)").isRegularFile();
        final List<String> listed = listBenchmarks();
        assertThat(listed).as("benchmarks listed by %s -l", JAR).hasSizeGreaterThanOrEqualTo(10);

        final Path results = Files.createTempFile("doppel-jmh-smoke-", ".csv");
        try
        {
            final Run run = java("-jar", JAR.toString(),
                "-f", "0", "-wi", "0", "-i", "1", "-r", "100ms", "-foe", "true",
                "-p", "blockSize=4096", "-p", "size=4096", "-p", "compression=lz4", "-p", "content=text",
                "-p", "dirtyFraction=0.0001", "-p", "placement=straddle",
                "-rf", "csv", "-rff", results.toString());
            assertThat(run.exit).as("JMH exit code; output:%n%s", run.output).isZero();
            final Map<String, Double> scores = primaryScores(Files.readAllLines(results, StandardCharsets.UTF_8));
            for (final String benchmark : listed)
            {
                assertThat(scores).as("score of %s; output:%n%s", benchmark, run.output).containsKey(benchmark);
                assertThat(scores.get(benchmark)).as("score of %s", benchmark).isPositive();
            }
        }
        finally
        {
            Files.deleteIfExists(results);
        }
    }

    /** {@code -l}: one benchmark name per line after the header. */
    private static List<String> listBenchmarks() throws Exception
    {
        final Run run = java("-jar", JAR.toString(), "-l");
        assertThat(run.exit).as("%s -l; output:%n%s", JAR, run.output).isZero();
        return Arrays.stream(run.output.split("\n"))
            .map(String::trim)
            .filter(line -> line.startsWith("io.doppel.bench."))
            .collect(Collectors.toList());
    }

    /**
     * Benchmark name to score, from JMH's CSV, primary results only (secondary ones are named
     * {@code benchmark:label}); a group's rows ({@code group:method}) count as results of the group's methods.
     */
    private static Map<String, Double> primaryScores(final List<String> csv)
    {
        final Map<String, Double> scores = new LinkedHashMap<>();
        for (final String line : csv.subList(1, csv.size()))
        {
            final String[] cells = line.split(",");
            final String name = unquote(cells[0]);
            final double score = Double.parseDouble(unquote(cells[4]));
            final int colon = name.indexOf(':');
            if (colon < 0)
            {
                scores.put(name, score);
            }
            else if (!name.contains(":gc.") && !name.endsWith(":bytes"))
            {
                // @Group members: "Class.group:method" -> the listed name "Class.group"
                scores.merge(name.substring(0, colon), score, Math::min);
            }
        }
        return scores;
    }

    private static String unquote(final String cell)
    {
        return cell.startsWith("\"") ? cell.substring(1, cell.length() - 1) : cell;
    }

    private static Run java(final String... args) throws IOException, InterruptedException
    {
        final List<String> command = new ArrayList<>();
        command.add(Paths.get(System.getProperty("java.home"), "bin", "java").toString());
        command.add("--enable-native-access=ALL-UNNAMED");
        command.add("-Xmx512m");
        command.addAll(Arrays.asList(args));
        final Path log = Files.createTempFile("doppel-jmh-smoke-", ".log");
        try
        {
            final Process process = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
            if (!process.waitFor(120, TimeUnit.SECONDS))
            {
                process.destroyForcibly();
                throw new AssertionError("JMH did not finish within 120 s: " + command + "\n"
                    + Files.readString(log, StandardCharsets.UTF_8));
            }
            return new Run(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        }
        finally
        {
            Files.deleteIfExists(log);
        }
    }

    private static final class Run
    {
        final int exit;
        final String output;

        Run(final int exit, final String output)
        {
            this.exit = exit;
            this.output = output;
        }
    }
}
