/*
 * Job driver for the local test stack (deploy/local/stack.py submit).
 *
 * Compiled by `stack.py fetch` into <stackdir>/hadoop/classes (never packaged as a jar). It only
 * wires up Hadoop's own example/test jobs so that the job name can be chosen: the stock drivers
 * (ExampleDriver wordcount, SleepJob) hard-code their job names and ignore -D mapreduce.job.name.
 *
 * Usage: HecJobs [generic options: -conf F -D k=v ...] <kind> <name> <hdfsBase> [localInput]
 *   kind: wordcount | sleep <mapMs> | pi <maps> <samples> | fail-tasks
 * Prints "HEC_APPLICATION_ID application_..." as soon as the job is submitted, then waits for it.
 * Exit code 0 when the job succeeded, 1 otherwise.
 */
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.examples.QuasiMonteCarlo;
import org.apache.hadoop.examples.WordCount;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.IntWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.SleepJob;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.output.FileOutputFormat;
import org.apache.hadoop.streaming.StreamJob;
import org.apache.hadoop.util.GenericOptionsParser;
import org.apache.hadoop.util.ToolRunner;

public class HecJobs {
  private static void shell(Configuration conf, String... args) throws Exception {
    int rc = ToolRunner.run(conf, new FsShell(), args);
    if (rc != 0) {
      throw new RuntimeException("FsShell " + String.join(" ", args) + " exited " + rc);
    }
  }

  private static void putInput(Configuration conf, String local, String hdfsDir) throws Exception {
    shell(conf, "-mkdir", "-p", hdfsDir);
    shell(conf, "-put", "-f", local, hdfsDir + "/");
  }

  private static void announce(Job job) {
    String id = job.getJobID().toString().replaceFirst("^job_", "application_");
    System.out.println("HEC_APPLICATION_ID " + id);
    System.out.flush();
  }

  public static void main(String[] argv) throws Exception {
    Configuration conf = new Configuration();
    String[] a = new GenericOptionsParser(conf, argv).getRemainingArgs();
    if (a.length < 3) {
      System.err.println("usage: HecJobs <kind> <name> <hdfsBase> [args]");
      System.exit(2);
    }
    String kind = a[0];
    String name = a[1];
    String base = a[2];
    conf.set("mapreduce.job.name", name);
    Job job;
    switch (kind) {
      case "wordcount": {
        putInput(conf, a[3], base + "/in");
        job = Job.getInstance(conf, name);
        job.setJarByClass(WordCount.class);
        job.setMapperClass(WordCount.TokenizerMapper.class);
        job.setCombinerClass(WordCount.IntSumReducer.class);
        job.setReducerClass(WordCount.IntSumReducer.class);
        job.setOutputKeyClass(Text.class);
        job.setOutputValueClass(IntWritable.class);
        job.setNumReduceTasks(1);
        FileInputFormat.addInputPath(job, new Path(base + "/in"));
        FileOutputFormat.setOutputPath(job, new Path(base + "/out"));
        break;
      }
      case "sleep": {
        long mapMs = Long.parseLong(a[3]);
        SleepJob sleep = new SleepJob();
        sleep.setConf(conf);
        // 1 map sleeping mapMs, 1 reduce sleeping 500 ms
        job = sleep.createJob(1, 1, mapMs, 1, 500, 1, name);
        job.setJobName(name);
        break;
      }
      case "pi": {
        // QuasiMonteCarlo builds its job internally and names it "QuasiMonteCarlo";
        // the YARN application tags (mapreduce.job.tags) carry the requested name.
        int rc = ToolRunner.run(conf, new QuasiMonteCarlo(), new String[] {a[3], a[4]});
        System.exit(rc == 0 ? 0 : 1);
        return;
      }
      case "fail-tasks": {
        putInput(conf, a[3], base + "/in");
        conf.setInt("mapreduce.map.maxattempts", 1);
        int rc = ToolRunner.run(conf, new StreamJob(), new String[] {
            "-input", base + "/in", "-output", base + "/out",
            "-mapper", "/bin/false", "-numReduceTasks", "0"});
        System.exit(rc == 0 ? 0 : 1);
        return;
      }
      default:
        System.err.println("unknown job kind " + kind);
        System.exit(2);
        return;
    }
    job.submit();
    announce(job);
    boolean ok = job.waitForCompletion(true);
    System.out.println("HEC_JOB_STATE " + job.getJobState());
    System.exit(ok ? 0 : 1);
  }
}
