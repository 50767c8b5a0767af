//! The quickstart trainer: the built-in tiny model learns eight answers word for word
//! (the same run as `train.toml`).

use ::arkor::{ChatMessage, Dataset, InferArgs, Lora, Model, Scheduler, Trainer};

pub fn trainer() -> Trainer {
    Trainer::builder("quickstart", Model::arkor_tiny(), Dataset::jsonl("data/train.jsonl"))
        .lora(Lora::new(16, 32.0))
        .max_steps(120)
        .learning_rate(1e-2)
        .batch_size(4)
        .warmup_steps(5)
        .scheduler(Scheduler::Cosine)
        .save_steps(40)
        .on_started(|started| async move {
            println!("started: job {}", started.job.id);
            Ok(())
        })
        .on_checkpoint(|checkpoint| async move {
            // Ask every checkpoint the first question of the dataset.
            let args = InferArgs {
                messages: vec![ChatMessage {
                    role: "user".to_owned(),
                    content: Some("What is arkor?".to_owned()),
                    ..ChatMessage::default()
                }],
                temperature: Some(0.0),
                max_tokens: Some(40),
                ..InferArgs::default()
            };
            match checkpoint.infer(args).await {
                Ok(reply) => println!("checkpoint {}: What is arkor? -> {reply}", checkpoint.step),
                Err(e) => eprintln!("checkpoint {}: inference failed: {e}", checkpoint.step),
            }
            Ok(())
        })
        .on_completed(|done| async move {
            println!("completed: {} adapter files", done.artifacts.len());
            Ok(())
        })
        .build()
        .expect("valid trainer settings")
}
