// PLACEHOLDER: replaced by the core work.
