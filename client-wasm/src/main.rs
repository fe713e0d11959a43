//! The widget's entry point; everything else is in the library.

fn main() {
    natter_client::start();
}
