# PLACEHOLDER: replaced by the install/consumer work.
message(STATUS "consumer test not written yet")
